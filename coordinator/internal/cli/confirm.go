package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// input is where confirmations are read from: the process's stdin (tests swap it).
type input interface {
	io.Reader
	IsTerminal() bool
}

type fileInput struct{ *os.File }

func (f fileInput) IsTerminal() bool { return term.IsTerminal(int(f.Fd())) }

var stdin input = fileInput{os.Stdin}

// errDeclined: the operator answered no; nothing was done.
var errDeclined = errors.New("not confirmed; nothing done")

// confirm asks question on stderr and reads a y/N answer from stdin, unless yes
// (-yes) says it is confirmed. When stdin is not a terminal nobody can answer:
// without -yes it refuses (ExitUsage), so a script must say -yes.
func confirm(yes bool, stderr io.Writer, question string) error {
	if yes {
		return nil
	}
	if !stdin.IsTerminal() {
		return usageErrorf("%s: stdin is not a terminal to confirm on; pass -yes", question)
	}
	fmt.Fprintf(stderr, "%s [y/N] ", question)
	answer, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && answer == "" {
		fmt.Fprintln(stderr)
		return errDeclined
	}
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes", "s", "si", "sí":
		return nil
	}
	return errDeclined
}
