package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// completionUsage is what `completion -h` prints.
const completionUsage = `Usage of completion:
  completion bash|zsh   print a shell completion script of the commands and their flags
`

// completion prints a bash or zsh completion script of program's commands in
// cmds and their flags, learnt by asking each command for -h.
func completion(ctx context.Context, program string, args []string, stdout io.Writer, cmds map[string]Command) error {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		return &flagError{err: flag.ErrHelp, usage: completionUsage}
	}
	if len(args) != 1 || (args[0] != "bash" && args[0] != "zsh") {
		return usageErrorf("want completion bash or completion zsh")
	}
	flags := map[string][]*flag.Flag{}
	for name, cmd := range cmds {
		if name == "completion" {
			continue
		}
		var fe *flagError
		if err := cmd(ctx, []string{"-h"}, io.Discard, io.Discard); errors.As(err, &fe) {
			fe.fs.VisitAll(func(f *flag.Flag) { flags[name] = append(flags[name], f) })
		}
	}
	names := append(slices.Sorted(maps.Keys(cmds)), "help", "version")
	if args[0] == "bash" {
		writeBash(stdout, program, names, flags)
	} else {
		writeZsh(stdout, program, names, flags)
	}
	return nil
}

func writeBash(w io.Writer, program string, names []string, flags map[string][]*flag.Flag) {
	fmt.Fprintf(w, `# bash completion for %[1]s. Load it with
#   source <(%[1]s completion bash)
_%[1]s() {
	local cur=${COMP_WORDS[COMP_CWORD]} words=""
	if [[ $COMP_CWORD -eq 1 ]]; then
		COMPREPLY=($(compgen -W %[2]q -- "$cur"))
		return
	fi
	case ${COMP_WORDS[1]} in
`, program, strings.Join(names, " "))
	for _, name := range names {
		var words []string
		for _, f := range flags[name] {
			words = append(words, "-"+f.Name)
		}
		switch name {
		case "completion":
			words = []string{"bash", "zsh"}
		case "help":
			words = names
		}
		if len(words) > 0 {
			fmt.Fprintf(w, "\t%s) words=%q ;;\n", name, strings.Join(words, " "))
		}
	}
	fmt.Fprintf(w, `	esac
	COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _%[1]s %[1]s
`, program)
}

func writeZsh(w io.Writer, program string, names []string, flags map[string][]*flag.Flag) {
	fmt.Fprintf(w, `#compdef %[1]s
# zsh completion for %[1]s. Load it with
#   source <(%[1]s completion zsh)
# or save it as _%[1]s in a directory of $fpath.
_%[1]s() {
	if (( CURRENT == 2 )); then
		compadd -- %[2]s
		return
	fi
	case $words[2] in
`, program, strings.Join(names, " "))
	for _, name := range names {
		var specs []string
		for _, f := range flags[name] {
			specs = append(specs, zshSpec(f))
		}
		switch name {
		case "completion":
			specs = []string{"'1:shell:(bash zsh)'"}
		case "help":
			specs = []string{"'1:command:(" + strings.Join(names, " ") + ")'"}
		}
		if len(specs) > 0 {
			fmt.Fprintf(w, "\t%s) _arguments \\\n\t\t%s ;;\n", name, strings.Join(specs, " \\\n\t\t"))
		}
	}
	fmt.Fprintf(w, `	esac
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
	_%[1]s "$@"
else
	compdef _%[1]s %[1]s
fi
`, program)
}

// zshSpec is a flag as an _arguments spec: '-name[what it does]' for a switch,
// '-name[what it does]:string:_files' for a flag with a value (a string may be a
// file: -tls-cert, -dir), ':int:' for a number.
func zshSpec(f *flag.Flag) string {
	kind, usage := flag.UnquoteUsage(f)
	usage = strings.NewReplacer("[", `\[`, "]", `\]`, "'", `'\''`, "\n", " ").Replace(usage)
	spec := "-" + f.Name + "[" + usage + "]"
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
		value := ""
		if kind == "string" {
			value = "_files"
		}
		spec += ":" + cmp.Or(kind, "value") + ":" + value
	}
	return "'" + spec + "'"
}
