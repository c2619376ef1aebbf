package expr

import (
	"errors"
	"fmt"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/interpreter"
)

// Bounds of every user-supplied expression.
const (
	// MaxLength is the longest expression source in bytes. Inngest documents no limit; 4 KiB
	// is far beyond any condition or key and bounds parsing and per-step work.
	MaxLength = 4 << 10
	// MaxCost is the budget of one evaluation in cel-go cost units (a field access or a
	// comparison is 1, a comprehension step a few): about 3 000 elements scanned by
	// `exists`. It is low because cel-go v0.31's cost tracker is quadratic in the number of
	// comprehension steps: at this budget an evaluation stops within about 20 ms on 2 cores,
	// at 100 000 it took 0.5 s and at 1 000 000 45 s.
	MaxCost = 20_000
	// MaxLiteralDepth bounds the nesting of list and map literals: cel-go's type checker is
	// superlinear in it (empty lists or maps nested 120 deep took 0.3 s and 0.6 s to check,
	// 240 deep 2 s), and no condition or key needs more than a few levels.
	MaxLiteralDepth = 16
)

// ErrTooExpensive is returned by Eval when an evaluation ran out of its MaxCost budget.
var ErrTooExpensive = errors.New("expression exceeded its cost limit")

// costOptions stop any evaluation past MaxCost, with actualCost's charges.
var costOptions = []cel.ProgramOption{cel.CostTracking(actualCost{}), cel.CostLimit(MaxCost)}

// checkLiteralDepth rejects list and map literals nested deeper than MaxLiteralDepth,
// before the type checker sees them.
func checkLiteralDepth(parsed *cel.Ast) error {
	var depth func(e ast.NavigableExpr) int
	depth = func(e ast.NavigableExpr) int {
		d := 0
		for _, c := range e.Children() {
			d = max(d, depth(c))
		}
		if k := e.Kind(); k == ast.ListKind || k == ast.MapKind || k == ast.StructKind {
			d++
		}
		return d
	}
	if d := depth(ast.NavigateAST(parsed.NativeRep())); d > MaxLiteralDepth {
		return fmt.Errorf("it nests list or map literals %d deep, over the limit of %d", d, MaxLiteralDepth)
	}
	return nil
}

// smallEvent is the size, in elements or characters, of every list, map and string of the
// event that compile-time estimation assumes.
const smallEvent = 10

// checkCost rejects an expression that could exceed MaxCost on a small event (every list,
// map and string of `event` and `async` at most smallEvent long): it would exceed the budget
// on ordinary events, so it is refused up front rather than failing at run time. Examples:
// comprehensions over large literal lists nested in one another, or over the event's lists
// nested four deep.
func checkCost(ast *cel.Ast) error {
	est, err := env.EstimateCost(ast, smallSizes{})
	if err != nil {
		return err
	}
	if est.Max > MaxCost {
		return fmt.Errorf("it may cost up to %d to evaluate on an event whose lists and strings have %d "+
			"elements, over the limit of %d: avoid nested comprehensions and large literal lists", est.Max, smallEvent, MaxCost)
	}
	return nil
}

// smallSizes estimates every list, map and string reached from the variables at
// smallEvent elements; cel-go asks only for values whose size it cannot see (not literals).
type smallSizes struct{}

func (smallSizes) EstimateSize(n checker.AstNode) *checker.SizeEstimate {
	if p := n.Path(); len(p) > 0 && (p[0] == "event" || p[0] == "async") {
		return &checker.SizeEstimate{Min: 0, Max: smallEvent}
	}
	return nil
}

func (smallSizes) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// evalErr maps cel-go's cancellation at the cost limit to ErrTooExpensive.
func (p *Program) evalErr(err error) error {
	var cancelled interpreter.EvalCancelledError
	if errors.As(err, &cancelled) && cancelled.Cause == interpreter.CostLimitExceeded {
		return fmt.Errorf("%w of %d on this event (%s): make it do less per event, e.g. "+
			"no comprehension nested in another over the event's lists", ErrTooExpensive, MaxCost, short(p.src))
	}
	return err
}

// short quotes src, cut to a readable length for error messages.
func short(src string) string {
	if len(src) > 80 {
		return fmt.Sprintf("%q…", src[:80])
	}
	return fmt.Sprintf("%q", src)
}
