package cli

import (
	"bytes"
	"flag"
	"fmt"
	"io"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// newFlagSet is a command's flag set. Parse it with parseFlags.
func newFlagSet(name string) *flag.FlagSet {
	return flag.NewFlagSet(name, flag.ContinueOnError)
}

// parseFlags parses a command's flags and takes no positional argument. What the
// flag package prints (the problem and the flags) is kept in the error, which
// Main prints: on stdout with exit code ExitOK for -h, on stderr with ExitUsage
// for a bad flag. Every command parses through it: `cierrectl completion` learns
// a command's flags from the error of its -h.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var out bytes.Buffer
	fs.SetOutput(&out)
	if err := fs.Parse(args); err != nil {
		return &flagError{err: err, usage: out.String(), fs: fs}
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q (flags go before it; see %s -h)", fs.Arg(0), fs.Name())
	}
	return nil
}

// output is a command's -json flag: with it the command prints each response as
// protojson, one JSON document a line, for scripts; without it, text for people.
type output struct{ json *bool }

func addOutput(fs *flag.FlagSet) output {
	return output{json: fs.Bool("json", false, "print the responses as JSON (protojson, proto field names), one document a line")}
}

func (o output) isJSON() bool { return o.json != nil && *o.json }

// jsonOptions: the proto's own field names (closing_id, estado, as in the
// database and the docs) and every field, zero or not, so a script finds each key.
var jsonOptions = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

// print writes m as one line of JSON with -json, and otherwise lets human write
// the text.
func (o output) print(w io.Writer, m proto.Message, human func(io.Writer)) error {
	if !o.isJSON() {
		human(w)
		return nil
	}
	b, err := jsonOptions.Marshal(m)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// describe is an error as Main prints it: a gRPC status as "Code: message"
// rather than "rpc error: code = Code desc = message".
func describe(err error) string {
	if st, ok := status.FromError(err); ok {
		return fmt.Sprintf("%s: %s", st.Code(), st.Message())
	}
	return err.Error()
}
