// Package expr compiles and evaluates the CEL expressions of function configuration
// (trigger, cancelOn, batch and wait `if`, flow-control keys, the REST API's bulk-cancellation
// `if`), with the variables Inngest declares: `event` and `async`.
package expr

import (
	"errors"
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

// Compile parses and type-checks src and checks its bounds (MaxLength, MaxCost); the error
// says what is wrong and where.
func Compile(src string) (*Program, error) {
	p, _, err := compile(src)
	return p, err
}

// CompileBool compiles src and rejects expressions whose type cannot be a boolean.
func CompileBool(src string) (*Program, error) {
	p, ast, err := compile(src)
	if err != nil {
		return nil, err
	}
	if t := ast.OutputType(); !t.IsAssignableType(types.BoolType) && t != types.DynType {
		return nil, fmt.Errorf("invalid expression %q: it returns %s, not a bool", src, t)
	}
	return p, nil
}

func compile(src string) (*Program, *cel.Ast, error) {
	if len(src) > MaxLength {
		return nil, nil, fmt.Errorf("invalid expression %s: it is %d bytes, over the limit of %d: shorten it",
			short(src), len(src), MaxLength)
	}
	parsed, iss := env.Parse(src)
	if iss.Err() != nil {
		return nil, nil, fmt.Errorf("invalid expression %q: %w", src, iss.Err())
	}
	if err := checkLiteralDepth(parsed); err != nil {
		return nil, nil, fmt.Errorf("invalid expression %s: %w", short(src), err)
	}
	ast, iss := env.Check(parsed)
	if iss.Err() != nil {
		return nil, nil, fmt.Errorf("invalid expression %q: %w", src, iss.Err())
	}
	if err := checkCost(ast); err != nil {
		return nil, nil, fmt.Errorf("invalid expression %s: %w", short(src), err)
	}
	prg, err := env.Program(ast, costOptions...)
	if err != nil {
		return nil, nil, fmt.Errorf("invalid expression %q: %w", src, err)
	}
	return &Program{src: src, prg: prg}, ast, nil
}

// String is the source text.
func (p *Program) String() string { return p.src }

// Eval evaluates the program with the given variables (event, async). An evaluation that
// runs out of its MaxCost budget stops there with an error wrapping ErrTooExpensive.
func (p *Program) Eval(vars map[string]any) (any, error) {
	out, _, err := p.prg.Eval(vars)
	if err != nil {
		return nil, p.evalErr(err)
	}
	return out.Value(), nil
}

// Match evaluates a boolean expression. A missing field or a non-bool result is false, not
// an error of the caller: an event that lacks the field simply does not match. So is an
// evaluation over the cost limit.
func (p *Program) Match(vars map[string]any) bool {
	ok, _ := p.Matches(vars)
	return ok
}

// Matches is Match, except that an evaluation over the cost limit is reported as an error
// wrapping ErrTooExpensive, for callers that can tell the user (the REST API).
func (p *Program) Matches(vars map[string]any) (bool, error) {
	v, err := p.Eval(vars)
	if errors.Is(err, ErrTooExpensive) {
		return false, err
	}
	b, ok := v.(bool)
	return err == nil && ok && b, nil
}
