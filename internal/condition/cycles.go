package condition

import (
	"fmt"
	"slices"
	"strings"
)

// CheckCycles checks the segment references of root, the condition of
// segment id, against the stored segments that lookup returns (lookup is
// not asked for id itself: root stands for it). It follows references
// transitively and returns an *Error whose Path is that of the {"segment":
// ...} node of root that leads to the problem:
//
//   - a reference back to id, directly (`segment "a" references itself`)
//     or through others (`segment reference cycle: a -> b -> c -> a`);
//   - a cycle among other segments reachable from root
//     (`segment reference cycle: b -> c -> b`);
//   - a reference to a segment lookup does not know: `unknown segment "x"`
//     when root refers to it directly, `unknown segment "x" (referenced
//     by segment "b")` when it is reached through b.
//
// lookup may return a nil node for a segment without a condition.
func CheckCycles(id string, root *Node, lookup func(id string) (*Node, bool)) error {
	c := cycleChecker{id: id, lookup: lookup, done: map[string]bool{}}
	var err error
	root.Walk(func(n *Node) bool {
		if err != nil {
			return false
		}
		if n.Kind != Segment {
			return true
		}
		if msg := c.visit(n.SegmentID, []string{id}); msg != "" {
			err = &Error{Path: n.Path, Msg: msg}
		}
		return true
	})
	return err
}

type cycleChecker struct {
	id     string
	lookup func(string) (*Node, bool)
	done   map[string]bool // reachable segments already found sound
}

// visit follows a reference to target from the segment last in stack and
// returns a message describing the first problem found, or "".
func (c *cycleChecker) visit(target string, stack []string) string {
	if target == c.id && len(stack) == 1 {
		return fmt.Sprintf("segment %q references itself", target)
	}
	for i, s := range stack {
		if s == target {
			return "segment reference cycle: " + strings.Join(append(slices.Clone(stack[i:]), target), " -> ")
		}
	}
	if c.done[target] {
		return ""
	}
	node, ok := c.lookup(target)
	if !ok {
		if len(stack) == 1 {
			return fmt.Sprintf("unknown segment %q", target)
		}
		return fmt.Sprintf("unknown segment %q (referenced by segment %q)", target, stack[len(stack)-1])
	}
	if node != nil {
		stack = append(stack, target)
		for _, ref := range node.SegmentRefs() {
			if msg := c.visit(ref, stack); msg != "" {
				return msg
			}
		}
	}
	c.done[target] = true
	return ""
}
