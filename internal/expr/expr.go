// Package expr compiles and evaluates the CEL expressions of function configuration
// (trigger `if`, and later keys), with the variables Inngest declares: `event` and `async`.
package expr

import (
	"fmt"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
)

var env = func() *cel.Env {
	e, err := cel.NewEnv(
		cel.Variable("event", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("async", cel.MapType(cel.StringType, cel.DynType)),
		cel.CrossTypeNumericComparisons(true),
	)
	if err != nil {
		panic(err)
	}
	return e
}()

// Program is a compiled expression.
type Program struct {
	src string
	prg cel.Program
}

// Compile parses and type-checks src; the error says what is wrong and where.
func Compile(src string) (*Program, error) {
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		return nil, fmt.Errorf("invalid expression %q: %w", src, iss.Err())
	}
	prg, err := env.Program(ast)
	if err != nil {
		return nil, fmt.Errorf("invalid expression %q: %w", src, err)
	}
	return &Program{src: src, prg: prg}, nil
}

// CompileBool compiles src and rejects expressions whose type cannot be a boolean.
func CompileBool(src string) (*Program, error) {
	p, err := Compile(src)
	if err != nil {
		return nil, err
	}
	ast, _ := env.Compile(src)
	if t := ast.OutputType(); !t.IsAssignableType(types.BoolType) && t != types.DynType {
		return nil, fmt.Errorf("invalid expression %q: it returns %s, not a bool", src, t)
	}
	return p, nil
}

// String is the source text.
func (p *Program) String() string { return p.src }

// Eval evaluates the program with the given variables (event, async).
func (p *Program) Eval(vars map[string]any) (any, error) {
	out, _, err := p.prg.Eval(vars)
	if err != nil {
		return nil, err
	}
	return out.Value(), nil
}

// Match evaluates a boolean expression. A missing field or a non-bool result is false, not
// an error of the caller: an event that lacks the field simply does not match.
func (p *Program) Match(vars map[string]any) bool {
	v, err := p.Eval(vars)
	if err != nil {
		return false
	}
	b, ok := v.(bool)
	return ok && b
}
