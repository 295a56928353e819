package domain

import "testing"

func TestCanStart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		estado Estado
		mode   Mode
		force  bool
		want   bool
	}{
		{"FullFromVerificado", EstadoVerificado, ModeFull, false, true},
		{"FullFromConDiscrepancias", EstadoConDiscrepancias, ModeFull, false, true},
		{"FullFromParcial", EstadoParcial, ModeFull, false, true},
		{"FullFromError", EstadoError, ModeFull, false, true},
		{"FullFromCancelada", EstadoCancelada, ModeFull, false, true},
		{"FullFromTimeout", EstadoTimeout, ModeFull, false, true},
		{"FullFromErrorRecursos", EstadoErrorRecursos, ModeFull, false, true},
		{"FullFromConsolidadosRefused", EstadoConsolidados, ModeFull, false, false},
		{"FullFromConsolidadosForced", EstadoConsolidados, ModeFull, true, true},
		{"FullWhileConsolidandoRefusedEvenForced", EstadoConsolidando, ModeFull, true, false},
		{"FullFromUnknownRefused", Estado("abierto"), ModeFull, true, false},
		{"RetryFromParcial", EstadoParcial, ModeRetryFailed, false, true},
		{"RetryFromErrorRefused", EstadoError, ModeRetryFailed, false, false},
		{"RetryFromConsolidadosRefusedEvenForced", EstadoConsolidados, ModeRetryFailed, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.estado.CanStart(tc.mode, tc.force); got != tc.want {
				t.Fatalf("%s.CanStart(%s, force=%v) = %v, want %v", tc.estado, tc.mode, tc.force, got, tc.want)
			}
		})
	}
}

func TestParsePolicy(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Policy{"": DefaultPolicy, "seed": PolicySeed, "cost_weighted": PolicyCostWeighted} {
		got, err := ParsePolicy(in)
		if err != nil || got != want {
			t.Fatalf("ParsePolicy(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParsePolicy("fastest"); err == nil {
		t.Fatal(`ParsePolicy("fastest") accepted an unknown policy`)
	}
}

func TestChunkStatusEnded(t *testing.T) {
	t.Parallel()
	for s, want := range map[ChunkStatus]bool{ChunkPending: false, ChunkRunning: false, ChunkSucceeded: true,
		ChunkFailed: true, ChunkSplit: true, ChunkCancelled: true} {
		if s.Ended() != want {
			t.Fatalf("%s.Ended() = %v, want %v", s, !want, want)
		}
		if done := want && s != ChunkCancelled; s.Done() != done {
			t.Fatalf("%s.Done() = %v, want %v", s, !done, done)
		}
	}
}

func TestPartialKeepsRows(t *testing.T) {
	t.Parallel()
	tests := []struct {
		consolidated, employees int
		keeps                   bool
	}{
		{1, 2, true}, {3, 6, true}, {2, 5, false}, {3, 5, true}, {0, 1, false}, {99, 200, false}, {100, 200, true},
	}
	for _, tt := range tests {
		if got := PartialKeepsRows(tt.consolidated, tt.employees); got != tt.keeps {
			t.Errorf("PartialKeepsRows(%d, %d) = %t, want %t", tt.consolidated, tt.employees, got, tt.keeps)
		}
	}
}
