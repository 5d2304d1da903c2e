package condition

import (
	"regexp"
	"time"

	"github.com/cohortdb/cohort/internal/model"
)

// Limits on the size of a condition. A condition may hold up to MaxLeaves
// leaf conditions and nest up to MaxDepth levels (the root is level 1, each
// operand of and/or/not one level deeper).
const (
	MaxDepth  = 64
	MaxLeaves = 10000
)

// Kind is the form of a condition node.
type Kind uint8

// The kinds of condition nodes.
const (
	And     Kind = iota + 1 // {"and": [C, ...]}: Children
	Or                      // {"or": [C, ...]}: Children
	Not                     // {"not": C}: Children[0]
	All                     // {"all": true}
	Segment                 // {"segment": "id"}: SegmentID
	Trait                   // {"trait": ...}: Name, Test
	Event                   // {"event": ...}: Name, Where, Count, Aggregate, Window
)

func (k Kind) String() string {
	switch k {
	case And:
		return "and"
	case Or:
		return "or"
	case Not:
		return "not"
	case All:
		return "all"
	case Segment:
		return "segment"
	case Trait:
		return "trait"
	case Event:
		return "event"
	}
	return "invalid"
}

// IsLeaf reports whether nodes of this kind are leaf conditions (criteria):
// all, segment, trait and event.
func (k Kind) IsLeaf() bool { return k >= All }

// Op is an operator of a trait test, a property predicate, a count or an
// aggregate.
type Op string

// The operators. See the package documentation for their meaning.
const (
	OpEq            Op = "eq"
	OpNeq           Op = "neq"
	OpIn            Op = "in"
	OpNotIn         Op = "not_in"
	OpContains      Op = "contains"
	OpNotContains   Op = "not_contains"
	OpStartsWith    Op = "starts_with"
	OpEndsWith      Op = "ends_with"
	OpMatches       Op = "matches"
	OpGt            Op = "gt"
	OpGte           Op = "gte"
	OpLt            Op = "lt"
	OpLte           Op = "lte"
	OpBetween       Op = "between"
	OpExists        Op = "exists"
	OpNotExists     Op = "not_exists"
	OpWithinLast    Op = "within_last"
	OpNotWithinLast Op = "not_within_last"
	OpNear          Op = "near"
)

// Valid reports whether o is one of the operators.
func (o Op) Valid() bool {
	switch o {
	case OpEq, OpNeq, OpIn, OpNotIn, OpContains, OpNotContains, OpStartsWith,
		OpEndsWith, OpMatches, OpGt, OpGte, OpLt, OpLte, OpBetween, OpExists,
		OpNotExists, OpWithinLast, OpNotWithinLast, OpNear:
		return true
	}
	return false
}

// Positive returns the positive form of a negated operator and true
// (neq → eq, not_in → in, not_contains → contains, not_exists → exists,
// not_within_last → within_last), or o itself and false. A negated
// operator matches exactly where its positive form does not.
func (o Op) Positive() (Op, bool) {
	switch o {
	case OpNeq:
		return OpEq, true
	case OpNotIn:
		return OpIn, true
	case OpNotContains:
		return OpContains, true
	case OpNotExists:
		return OpExists, true
	case OpNotWithinLast:
		return OpWithinLast, true
	}
	return o, false
}

// IsString reports whether ignore_case may be used with o.
func (o Op) IsString() bool {
	switch o {
	case OpEq, OpNeq, OpIn, OpNotIn, OpContains, OpNotContains, OpStartsWith,
		OpEndsWith, OpMatches:
		return true
	}
	return false
}

// inCount reports whether o may compare an event count.
func (o Op) inCount() bool {
	switch o {
	case OpEq, OpNeq, OpGt, OpGte, OpLt, OpLte, OpBetween:
		return true
	}
	return false
}

// inAggregate reports whether o may compare an aggregate.
func (o Op) inAggregate() bool {
	switch o {
	case OpEq, OpNeq, OpIn, OpNotIn, OpGt, OpGte, OpLt, OpLte, OpBetween:
		return true
	}
	return false
}

// Node is one parsed and validated condition. Every node carries the JSON
// pointer of the object it was parsed from; the fields used depend on Kind.
type Node struct {
	Kind Kind
	Path string

	// Children are the operands of And and Or, in document order, and the
	// single operand of Not.
	Children []*Node

	// SegmentID is the segment a Segment node refers to.
	SegmentID string

	// Name is the trait name (a dotted path, see the package doc) of a
	// Trait node and the event name of an Event node.
	Name string

	// Test is the operator and operand of a Trait node.
	Test *Test

	// Where are an Event node's property predicates, all of which must
	// hold for an event to qualify.
	Where []Pred
	// Count is an Event node's count comparison; nil means the default
	// (see EffectiveCount).
	Count *Cmp
	// Aggregate is an Event node's aggregate comparison, or nil.
	Aggregate *Agg
	// Window is the time window of an Event node's qualifying events.
	Window Window
}

// Test is an operator with its parsed operand: the machinery shared by
// trait conditions, property predicates and aggregates.
type Test struct {
	Op Op
	// Value is the operand as encoding/json decodes it (float64, string,
	// bool, []any, map[string]any); nil for exists and not_exists.
	Value any
	// IgnoreCase folds strings with strings.ToLower before comparing.
	IgnoreCase bool

	// Scalar is the operand of eq, neq, contains, not_contains,
	// starts_with, ends_with, matches, gt, gte, lt and lte.
	Scalar Scalar
	// List holds the elements of in/not_in, and [lo, hi] of between.
	List []Scalar
	// Regexp is the compiled pattern of matches (with the (?i) flag when
	// IgnoreCase).
	Regexp *regexp.Regexp
	// Duration is the operand of within_last and not_within_last.
	Duration time.Duration
	// Near is the operand of near.
	Near Geo
}

// Scalar is one parsed operand value.
type Scalar struct {
	// Type is model.Number, model.String, model.DateTime (a string that is
	// an RFC 3339 instant) or model.Boolean.
	Type model.ValueType
	Num  float64   // Number
	Str  string    // String and DateTime: the operand as written
	Fold string    // String and DateTime: Str, lower-cased when IgnoreCase
	Time time.Time // DateTime
	Bool bool      // Boolean
}

// Geo is the operand of near: a centre and a radius in kilometres.
type Geo struct {
	Lat, Lon, RadiusKm float64
}

// Pred is one property predicate of an event's "where".
type Pred struct {
	// Path is the JSON pointer of the predicate object.
	Path string
	// Property is the property name, a dotted path into nested objects
	// resolved with model.Lookup.
	Property string
	Test
}

// Cmp is an event count comparison. For between, the count must lie in
// [Lo, Hi]; for every other operator Lo is the operand and Hi is unused.
type Cmp struct {
	Op     Op
	Lo, Hi int64
}

// AggFn is an aggregate function.
type AggFn string

// The aggregate functions.
const (
	FnSum      AggFn = "sum"
	FnAvg      AggFn = "avg"
	FnMin      AggFn = "min"
	FnMax      AggFn = "max"
	FnDistinct AggFn = "distinct"
)

// Valid reports whether f is one of the aggregate functions.
func (f AggFn) Valid() bool {
	switch f {
	case FnSum, FnAvg, FnMin, FnMax, FnDistinct:
		return true
	}
	return false
}

// Agg is an aggregate over a property of an event's qualifying events,
// compared with a number operand (Test.Scalar or Test.List hold numbers).
type Agg struct {
	Fn       AggFn
	Property string
	Test
}

// WindowKind is the kind of an event window.
type WindowKind uint8

// The window kinds.
const (
	WindowNone  WindowKind = iota // all retained history
	WindowLast                    // timestamps in (now − Last, now]
	WindowRange                   // timestamps in [From, To]
)

// Window restricts the events an Event node considers.
type Window struct {
	Kind     WindowKind
	Last     time.Duration
	From, To time.Time
}

// EffectiveCount returns the count comparison that applies to an Event
// node: its Count; gte 1 when it has neither count nor aggregate; none
// (false) when it has only an aggregate.
func (n *Node) EffectiveCount() (Cmp, bool) {
	switch {
	case n.Count != nil:
		return *n.Count, true
	case n.Aggregate == nil:
		return Cmp{Op: OpGte, Lo: 1}, true
	}
	return Cmp{}, false
}

// Walk calls fn for n and its descendants in document order (pre-order).
// When fn returns false, the node's children are skipped.
func (n *Node) Walk(fn func(*Node) bool) {
	if !fn(n) {
		return
	}
	for _, c := range n.Children {
		c.Walk(fn)
	}
}

// Leaves returns every leaf condition (All, Segment, Trait and Event
// nodes) in document order: the criteria whose sizes are reported.
func (n *Node) Leaves() []*Node {
	var out []*Node
	n.Walk(func(x *Node) bool {
		if x.Kind.IsLeaf() {
			out = append(out, x)
		}
		return true
	})
	return out
}

// SegmentRefs returns the ids of the segments n refers to directly, each
// once, in order of first appearance.
func (n *Node) SegmentRefs() []string {
	return n.names(Segment, func(x *Node) string { return x.SegmentID })
}

// EventNames returns the event names n depends on, each once, in order of
// first appearance. Referenced segments are not followed.
func (n *Node) EventNames() []string {
	return n.names(Event, func(x *Node) string { return x.Name })
}

// TraitNames returns the trait names n depends on, each once, in order of
// first appearance, as written. A name may be a dotted path: a change of
// the top-level trait "address" affects the name "address.city".
// Referenced segments are not followed.
func (n *Node) TraitNames() []string {
	return n.names(Trait, func(x *Node) string { return x.Name })
}

func (n *Node) names(k Kind, get func(*Node) string) []string {
	var out []string
	seen := map[string]bool{}
	n.Walk(func(x *Node) bool {
		if x.Kind == k && !seen[get(x)] {
			seen[get(x)] = true
			out = append(out, get(x))
		}
		return true
	})
	return out
}

// IsTimeDependent reports whether n's result can change with the passage of
// time alone: an event window "last", or within_last / not_within_last in a
// trait test or a property predicate. Referenced segments are not followed.
func (n *Node) IsTimeDependent() bool {
	dep := false
	n.Walk(func(x *Node) bool {
		switch x.Kind {
		case Trait:
			dep = dep || x.Test.relative()
		case Event:
			dep = dep || x.Window.Kind == WindowLast
			for i := range x.Where {
				dep = dep || x.Where[i].relative()
			}
		}
		return !dep
	})
	return dep
}

func (t *Test) relative() bool {
	return t.Op == OpWithinLast || t.Op == OpNotWithinLast
}
