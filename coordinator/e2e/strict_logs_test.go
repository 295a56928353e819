package e2e_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// checkLogsStrict reads every JSON log line the cluster's processes wrote and
// fails the test on a line that is not one well-formed JSON object, or that names
// a key twice in one object (a JSON parser keeps only one of them: the other
// value is lost to whoever reads the logs).
func checkLogsStrict(t *testing.T, dir string) {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.log"))
	require.NoError(t, err)
	for _, path := range paths {
		f, err := os.Open(path)
		require.NoError(t, err)
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
		for n := 1; sc.Scan(); n++ {
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 || line[0] != '{' {
				continue // not a log line of ours (a runtime's message on stderr)
			}
			if err := strictJSON(line); err != nil {
				t.Errorf("%s:%d: %v\n%s", filepath.Base(path), n, err, line)
			}
		}
		require.NoError(t, sc.Err())
		f.Close()
	}
}

// strictJSON checks b is one JSON value with no key repeated in any object.
func strictJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := strictValue(dec); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("trailing data after the JSON object")
	}
	return nil
}

func strictValue(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return err
			}
			key := k.(string)
			if seen[key] {
				return fmt.Errorf("key %q appears twice", key)
			}
			seen[key] = true
			if err := strictValue(dec); err != nil {
				return err
			}
		}
		_, err = dec.Token() // '}'
		return err
	case json.Delim('['):
		for dec.More() {
			if err := strictValue(dec); err != nil {
				return err
			}
		}
		_, err = dec.Token() // ']'
		return err
	}
	return nil
}

func TestStrictJSONRejectsDuplicateKeys(t *testing.T) {
	t.Parallel()
	require.NoError(t, strictJSON([]byte(`{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}`)))
	require.ErrorContains(t, strictJSON([]byte(`{"version":"v1","msg":"x","version":14}`)), `"version" appears twice`)
	require.ErrorContains(t, strictJSON([]byte(`{"a":{"b":1,"b":2}}`)), `"b" appears twice`)
	require.Error(t, strictJSON([]byte(`{"a":1} {"b":2}`)))
	require.Error(t, strictJSON([]byte(`{"a":`)))
}
