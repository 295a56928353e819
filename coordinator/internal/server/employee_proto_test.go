package server

import (
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/nominacl/consolidation/pkg/rules"
)

// TestEmployeeProtoSetsEveryField: a record with every field set (filled by
// reflection, so a field added to rules.Consolidated is set too) gives a
// ConsolidatedEmployee with every field set, each of its concepts likewise: a
// proto field the conversion does not fill fails here, and so does a record
// field with no proto field of its name.
func TestEmployeeProtoSetsEveryField(t *testing.T) {
	t.Parallel()
	var rec rules.Consolidated
	fill(reflect.ValueOf(&rec).Elem())
	e := employeeProto(3, 4, rec)
	requireEveryFieldSet(t, e.ProtoReflect())
	require.NotEmpty(t, e.GetConcepts())
	for _, c := range e.GetConcepts() {
		requireEveryFieldSet(t, c.ProtoReflect())
	}

	// Each record field has its proto field: by its name, snake-cased, or as renamed here.
	renamed := map[string]protoreflect.Name{"EmpleadoOrigenID": "employee_id", "RUT": "rut", "TotalHaberes": "total_haberes_cents",
		"TotalDescuentos": "total_descuentos_cents", "LiquidoPagar": "liquido_pagar_cents", "Lines": "concepts"}
	fields := e.ProtoReflect().Descriptor().Fields()
	for _, f := range reflect.VisibleFields(reflect.TypeOf(rec)) {
		name, ok := renamed[f.Name]
		if !ok {
			name = protoreflect.Name(snake(f.Name))
		}
		require.NotNil(t, fields.ByName(name), "rules.Consolidated.%s has no ConsolidatedEmployee field %s", f.Name, name)
	}
}

// fill sets every field of v, recursively, to a value that is not zero.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i))
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0))
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int32, reflect.Int64:
		v.SetInt(7)
	default:
		panic("fill: a field of kind " + v.Kind().String())
	}
}

func requireEveryFieldSet(t *testing.T, m protoreflect.Message) {
	t.Helper()
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		require.True(t, m.Has(fields.Get(i)), "%s is not set", fields.Get(i).FullName())
	}
}

// snake is a Go field name in snake case: NombreCompleto → nombre_completo.
func snake(name string) string {
	var out []byte
	for i, r := range name {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				out = append(out, '_')
			}
			r += 'a' - 'A'
		}
		out = append(out, byte(r))
	}
	return string(out)
}
