package expr

import (
	"math"

	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// actualCost charges the calls cel-go's default tracker counts as 1 although their work
// grows with their operands, which here are mostly dyn JSON values:
//   - == and != compare nested lists and maps element by element (cel-go counts the top
//     level only);
//   - `in` over a list compares every element, nested ones included;
//   - +, <, <=, >, >= on dyn operands dispatch at run time (overload id ""), so cel-go does
//     not know they are string operations: a chain of dyn string concatenations would
//     copy gigabytes for cost 1 each.
type actualCost struct{}

func (actualCost) CallCost(function, overloadID string, args []ref.Val, result ref.Val) *uint64 {
	var c uint64
	switch {
	case len(args) != 2:
		return nil
	case function == operators.Equals || function == operators.NotEquals:
		c = min(deepSize(args[0]), deepSize(args[1]))
	case function == operators.In || function == operators.OldIn:
		if _, isList := args[1].(traits.Lister); isList {
			c = deepSize(args[1])
		} else {
			c = deepSize(args[0]) // a map lookup hashes the key
		}
	case overloadID != "":
		return nil // statically resolved: cel-go's own cost applies
	case function == operators.Add:
		c = max(1, textCost(result))
	case function == operators.Less || function == operators.LessEquals ||
		function == operators.Greater || function == operators.GreaterEquals:
		c = max(1, min(textCost(args[0]), textCost(args[1])))
	default:
		return nil
	}
	return &c
}

// textCost is cel-go's traversal cost of a string or bytes (a tenth of a unit per byte), 0
// for anything else.
func textCost(v ref.Val) uint64 {
	switch t := v.(type) {
	case types.String:
		return uint64(math.Ceil(float64(len(t)) * 0.1))
	case types.Bytes:
		return uint64(math.Ceil(float64(len(t)) * 0.1))
	}
	return 0
}

// deepSize is the cost of traversing v: 1 per scalar, list or map, or textCost for strings
// and bytes when more, summed over nested elements. It stops counting past MaxCost, where
// the evaluation stops anyway, so counting never costs more than the budget.
func deepSize(v ref.Val) uint64 {
	var n uint64
	var walk func(v ref.Val)
	walk = func(v ref.Val) {
		if n > MaxCost {
			return
		}
		n += max(1, textCost(v))
		switch t := v.(type) {
		case traits.Mapper:
			for it := t.Iterator(); n <= MaxCost && it.HasNext() == types.True; {
				k := it.Next()
				walk(k)
				if val, ok := t.Find(k); ok {
					walk(val)
				}
			}
		case traits.Lister:
			for it := t.Iterator(); n <= MaxCost && it.HasNext() == types.True; {
				walk(it.Next())
			}
		}
	}
	walk(v)
	return n
}
