package store_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/store"
)

func TestCheckRUTs(t *testing.T) {
	t.Parallel()

	t.Run("FindsNothingInACleanClosing", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		p, err := store.CheckRUTs(t.Context(), pool, 7, 20)
		require.NoError(t, err)
		require.True(t, p.OK(), "%+v", p)
	})
	t.Run("FindsBadAndRepeatedRUTsOfBothSourcesInOneCall", func(t *testing.T) {
		t.Parallel()
		pool := loadClosing(t)
		_, err := pool.Exec(t.Context(), `
			UPDATE nomina_empleado_cierre SET rut = '12.345.678-0' WHERE id = 102;   -- a wrong check digit
			UPDATE nomina_empleado_cierre SET rut = '012.345.678-5' WHERE id = 103;  -- 101's RUT, written otherwise
			UPDATE nomina_empleado_cierre_novedades SET rut = 'sin rut' WHERE id = 502;
			UPDATE nomina_empleado_cierre_novedades SET rut = '12345678-5' WHERE id = 503;
			UPDATE nomina_empleado_cierre SET rut = 'x' WHERE id = 201;              -- closing 8's`)
		require.NoError(t, err)
		p, err := store.CheckRUTs(t.Context(), pool, 7, 20)
		require.NoError(t, err)
		require.Equal(t, 2, p.BadCount)
		require.Equal(t, []store.BadRUT{{Table: "nomina_empleado_cierre", RowID: 102, Raw: "12.345.678-0"},
			{Table: "nomina_empleado_cierre_novedades", RowID: 502, Raw: "sin rut"}}, p.Bad)
		require.Equal(t, 2, p.RepeatedCount)
		require.Equal(t, []store.RepeatedRUT{{Table: "nomina_empleado_cierre", RUT: "12345678-5", RowIDs: []int64{101, 103}},
			{Table: "nomina_empleado_cierre_novedades", RUT: "12345678-5", RowIDs: []int64{501, 503}}}, p.Repeated)

		// The limit bounds the examples, not the counts.
		p, err = store.CheckRUTs(t.Context(), pool, 7, 1)
		require.NoError(t, err)
		require.Equal(t, []int{2, 1, 2, 1}, []int{p.BadCount, len(p.Bad), p.RepeatedCount, len(p.Repeated)})
	})
}
