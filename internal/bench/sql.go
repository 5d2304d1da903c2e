package bench

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cohortdb/cohort/internal/condition"
	"github.com/cohortdb/cohort/internal/model"
)

// Dialect is an SQL dialect the translator writes.
type Dialect int

// The dialects.
const (
	Postgres Dialect = iota + 1
	DuckDB
)

func (d Dialect) String() string {
	switch d {
	case Postgres:
		return "PostgreSQL"
	case DuckDB:
		return "DuckDB"
	}
	return "unknown dialect"
}

// SQL is a condition translated to SQL over the peers' schema:
//
//	profiles(id text, num int, traits json)          one row per profile
//	events(profile_num int, name text, ts timestamptz, props json)
//	segment_members(segment text, num int)           stored memberships
//
// With holds the common table expressions (or is empty); From is the
// rest after the select list: FROM profiles p, the joins and the WHERE.
type SQL struct {
	With, From string
}

// Count counts the matching profiles.
func (s SQL) Count() string { return s.With + "SELECT count(*) " + s.From }

// Members lists the matching profiles' numbers.
func (s SQL) Members() string { return s.With + "SELECT p.num " + s.From }

// Insert stores the matching profiles as the members of segment id.
func (s SQL) Insert(id string) string {
	return "INSERT INTO segment_members (segment, num) " + s.With + "SELECT " + lit(id) + ", p.num " + s.From
}

// Translate writes n as SQL in dialect d, evaluated at now, with the
// contract's semantics: every leaf is a non-null boolean over a profile,
// so "not" is the exact complement over all profiles; an event leaf is a
// per-profile aggregate over its qualifying events left-joined to every
// profile, so profiles without events have count 0, sum 0, distinct 0
// and no avg, min or max; comparisons apply only to values of the
// operand's JSON type; ignore_case lower-cases both sides; relative
// windows are literal instants computed from now. {"segment": id} reads
// segment_members. The near operator is not translated.
func Translate(d Dialect, n *condition.Node, now time.Time) (SQL, error) {
	q := &query{d: d, now: now}
	where, err := q.cond(n)
	if err != nil {
		return SQL{}, err
	}
	var with, joins string
	if len(q.ctes) > 0 {
		with = "WITH " + strings.Join(q.ctes, ",\n") + "\n"
		joins = "\n" + strings.Join(q.joins, "\n")
	}
	return SQL{With: with, From: "FROM profiles p" + joins + "\nWHERE " + where}, nil
}

type query struct {
	d     Dialect
	now   time.Time
	ctes  []string
	joins []string
}

func (q *query) cond(n *condition.Node) (string, error) {
	switch n.Kind {
	case condition.And, condition.Or:
		sep := " AND "
		if n.Kind == condition.Or {
			sep = " OR "
		}
		parts := make([]string, len(n.Children))
		for i, c := range n.Children {
			s, err := q.cond(c)
			if err != nil {
				return "", err
			}
			parts[i] = s
		}
		return "(" + strings.Join(parts, sep) + ")", nil
	case condition.Not:
		s, err := q.cond(n.Children[0])
		if err != nil {
			return "", err
		}
		return "(NOT " + s + ")", nil
	case condition.All:
		return "true", nil
	case condition.Segment:
		return "(p.num IN (SELECT m.num FROM segment_members m WHERE m.segment = " + lit(n.SegmentID) + "))", nil
	case condition.Trait:
		if q.d == Postgres {
			if s, ok := q.containment(n); ok {
				return s, nil
			}
		}
		v, err := q.lookup("p.traits", n.Name)
		if err != nil {
			return "", err
		}
		return q.test(n.Test, v)
	case condition.Event:
		return q.event(n)
	}
	return "", fmt.Errorf("condition %s at %q cannot be translated", n.Kind, n.Path)
}

// containment writes eq/neq/in/not_in of a scalar on a top-level trait as
// jsonb containment (traits @> '{"k": v}'), which the GIN index on traits
// answers; jsonb compares numbers numerically and strings exactly, as eq
// does.
func (q *query) containment(n *condition.Node) (string, bool) {
	t := n.Test
	if t.IgnoreCase || strings.Contains(n.Name, ".") {
		return "", false
	}
	op, neg := t.Op.Positive()
	var scalars []condition.Scalar
	switch op {
	case condition.OpEq:
		scalars = []condition.Scalar{t.Scalar}
	case condition.OpIn:
		scalars = t.List
	default:
		return "", false
	}
	parts := make([]string, 0, len(scalars))
	for _, s := range scalars {
		var v any
		switch s.Type {
		case model.String:
			v = s.Str
		case model.Number:
			v = s.Num
		case model.Boolean:
			v = s.Bool
		default:
			return "", false
		}
		parts = append(parts, "p.traits @> "+lit(condition.CanonicalJSON(map[string]any{n.Name: v}))+"::jsonb")
	}
	s := "false"
	if len(parts) > 0 {
		s = "(" + strings.Join(parts, " OR ") + ")"
	}
	if neg {
		s = "(NOT " + s + ")"
	}
	return s, true
}

// event writes an event leaf: a CTE of the per-profile count (and
// aggregate) of the qualifying events, left-joined to the profiles.
func (q *query) event(n *condition.Node) (string, error) {
	name := fmt.Sprintf("e%d", len(q.ctes)+1)
	conds := []string{"e.name = " + lit(n.Name)}
	switch n.Window.Kind {
	case condition.WindowLast:
		conds = append(conds, "e.ts > "+q.ts(q.now.Add(-n.Window.Last)), "e.ts <= "+q.ts(q.now))
	case condition.WindowRange:
		conds = append(conds, "e.ts >= "+q.ts(n.Window.From), "e.ts <= "+q.ts(n.Window.To))
	}
	for i := range n.Where {
		p := &n.Where[i]
		v, err := q.lookup("e.props", p.Property)
		if err != nil {
			return "", err
		}
		s, err := q.test(&p.Test, v)
		if err != nil {
			return "", fmt.Errorf("%s: %w", p.Path, err)
		}
		conds = append(conds, s)
	}
	cols := "e.profile_num AS num, count(*) AS c"
	var aggExpr string
	if a := n.Aggregate; a != nil {
		v, err := q.lookup("e.props", a.Property)
		if err != nil {
			return "", err
		}
		switch a.Fn {
		case condition.FnSum, condition.FnAvg, condition.FnMin, condition.FnMax:
			cols += fmt.Sprintf(", %s(CASE WHEN %s THEN %s END) AS a", a.Fn, q.isNum(v), q.num(v))
		case condition.FnDistinct:
			if q.d == Postgres {
				cols += fmt.Sprintf(", count(DISTINCT CASE WHEN jsonb_typeof(%s) <> 'null' THEN %s END) AS a", v, v)
			} else {
				cols += fmt.Sprintf(", count(DISTINCT CASE WHEN json_type(%s) <> 'NULL' THEN CAST(%s AS VARCHAR) END) AS a", v, v)
			}
		default:
			return "", fmt.Errorf("%s: aggregate %q cannot be translated", n.Path, a.Fn)
		}
		x := name + ".a"
		defined := "true"
		switch a.Fn {
		case condition.FnSum, condition.FnDistinct:
			x = "COALESCE(" + x + ", 0)"
		default:
			defined = x + " IS NOT NULL"
		}
		s, err := q.numTest(&a.Test, x)
		if err != nil {
			return "", fmt.Errorf("%s: %w", n.Path, err)
		}
		aggExpr = "COALESCE(" + defined + " AND " + s + ", false)"
	}
	q.ctes = append(q.ctes, fmt.Sprintf("%s AS (SELECT %s FROM events e WHERE %s GROUP BY e.profile_num)", name, cols, strings.Join(conds, " AND ")))
	q.joins = append(q.joins, fmt.Sprintf("LEFT JOIN %s ON %s.num = p.num", name, name))
	var parts []string
	if c, ok := n.EffectiveCount(); ok {
		parts = append(parts, countCmp(c, "COALESCE("+name+".c, 0)"))
	}
	if aggExpr != "" {
		parts = append(parts, aggExpr)
	}
	return "(" + strings.Join(parts, " AND ") + ")", nil
}

func countCmp(c condition.Cmp, x string) string {
	switch c.Op {
	case condition.OpEq:
		return fmt.Sprintf("%s = %d", x, c.Lo)
	case condition.OpNeq:
		return fmt.Sprintf("%s <> %d", x, c.Lo)
	case condition.OpGt:
		return fmt.Sprintf("%s > %d", x, c.Lo)
	case condition.OpGte:
		return fmt.Sprintf("%s >= %d", x, c.Lo)
	case condition.OpLt:
		return fmt.Sprintf("%s < %d", x, c.Lo)
	case condition.OpLte:
		return fmt.Sprintf("%s <= %d", x, c.Lo)
	case condition.OpBetween:
		return fmt.Sprintf("%s BETWEEN %d AND %d", x, c.Lo, c.Hi)
	}
	return "false"
}

// numTest compares an SQL double x (an aggregate) with a test's number
// operands; operands of other types never match.
func (q *query) numTest(t *condition.Test, x string) (string, error) {
	op, neg := t.Op.Positive()
	var s string
	cmp := func(sym string, sc condition.Scalar) string {
		if sc.Type != model.Number {
			return "false"
		}
		return x + " " + sym + " " + q.float(sc.Num)
	}
	switch op {
	case condition.OpEq:
		s = cmp("=", t.Scalar)
	case condition.OpIn:
		parts := []string{"false"}
		for _, sc := range t.List {
			parts = append(parts, cmp("=", sc))
		}
		s = "(" + strings.Join(parts, " OR ") + ")"
	case condition.OpGt:
		s = cmp(">", t.Scalar)
	case condition.OpGte:
		s = cmp(">=", t.Scalar)
	case condition.OpLt:
		s = cmp("<", t.Scalar)
	case condition.OpLte:
		s = cmp("<=", t.Scalar)
	case condition.OpBetween:
		s = "(" + cmp(">=", t.List[0]) + " AND " + cmp("<=", t.List[1]) + ")"
	default:
		return "", fmt.Errorf("operator %s on an aggregate cannot be translated", t.Op)
	}
	s = "COALESCE(" + s + ", false)"
	if neg {
		s = "(NOT " + s + ")"
	}
	return s, nil
}

// test writes a trait test or property predicate on the JSON value v (SQL
// NULL when missing) as a non-null boolean.
func (q *query) test(t *condition.Test, v string) (string, error) {
	op, neg := t.Op.Positive()
	s, err := q.positive(op, t, v)
	if err != nil {
		return "", err
	}
	s = "COALESCE(" + s + ", false)"
	if neg {
		s = "(NOT " + s + ")"
	}
	return s, nil
}

func (q *query) positive(op condition.Op, t *condition.Test, v string) (string, error) {
	switch op {
	case condition.OpExists:
		return q.typ(v) + " <> " + q.typeName("null"), nil
	case condition.OpEq:
		return q.equal(t, &t.Scalar, v), nil
	case condition.OpIn:
		parts := []string{"false"}
		for i := range t.List {
			parts = append(parts, q.equal(t, &t.List[i], v))
		}
		return "(" + strings.Join(parts, " OR ") + ")", nil
	case condition.OpContains:
		str := "false"
		if t.Scalar.Type == model.String || t.Scalar.Type == model.DateTime {
			str = "strpos(" + q.fold(t, q.str(v)) + ", " + lit(t.Scalar.Fold) + ") > 0"
		}
		return "CASE WHEN " + q.isArr(v) + " THEN " + q.anyElem(v, func(e string) string { return q.equal(t, &t.Scalar, e) }) +
			" WHEN " + q.isStr(v) + " THEN " + str + " ELSE false END", nil
	case condition.OpStartsWith:
		return "CASE WHEN " + q.isStr(v) + " THEN starts_with(" + q.fold(t, q.str(v)) + ", " + lit(t.Scalar.Fold) + ") ELSE false END", nil
	case condition.OpEndsWith:
		x := q.fold(t, q.str(v))
		e := "right(" + x + ", " + strconv.Itoa(utf8.RuneCountInString(t.Scalar.Fold)) + ") = " + lit(t.Scalar.Fold)
		if q.d == DuckDB {
			e = "ends_with(" + x + ", " + lit(t.Scalar.Fold) + ")"
		}
		return "CASE WHEN " + q.isStr(v) + " THEN " + e + " ELSE false END", nil
	case condition.OpMatches:
		var e string
		if q.d == Postgres {
			sym := "~"
			if t.IgnoreCase {
				sym = "~*"
			}
			e = q.str(v) + " " + sym + " " + lit(t.Scalar.Str)
		} else {
			opts := ""
			if t.IgnoreCase {
				opts = ", 'i'"
			}
			e = "regexp_matches(" + q.str(v) + ", " + lit(t.Scalar.Str) + opts + ")"
		}
		return "CASE WHEN " + q.isStr(v) + " THEN " + e + " ELSE false END", nil
	case condition.OpGt, condition.OpGte, condition.OpLt, condition.OpLte:
		sym := map[condition.Op]string{condition.OpGt: ">", condition.OpGte: ">=", condition.OpLt: "<", condition.OpLte: "<="}[op]
		return q.compare(&t.Scalar, sym, v), nil
	case condition.OpBetween:
		return "(" + q.compare(&t.List[0], ">=", v) + " AND " + q.compare(&t.List[1], "<=", v) + ")", nil
	case condition.OpWithinLast:
		x := q.str(v)
		return "CASE WHEN " + q.isStr(v) + " AND " + q.isTime(x) + " THEN " + q.parseTime(x) + " > " + q.ts(q.now.Add(-t.Duration)) +
			" AND " + q.parseTime(x) + " <= " + q.ts(q.now) + " ELSE false END", nil
	}
	return "", fmt.Errorf("operator %s cannot be translated to SQL", t.Op)
}

// equal: v equals the operand s, by s's type.
func (q *query) equal(t *condition.Test, s *condition.Scalar, v string) string {
	switch s.Type {
	case model.Number:
		return "CASE WHEN " + q.isNum(v) + " THEN " + q.num(v) + " = " + q.float(s.Num) + " ELSE false END"
	case model.Boolean:
		return "CASE WHEN " + q.isBool(v) + " THEN " + q.boolean(v) + " = " + strconv.FormatBool(s.Bool) + " ELSE false END"
	case model.DateTime:
		x := q.str(v)
		return "CASE WHEN " + q.isStr(v) + " AND " + q.isTime(x) + " THEN " + q.parseTime(x) + " = " + q.ts(s.Time) + " ELSE false END"
	case model.String:
		return "CASE WHEN " + q.isStr(v) + " THEN " + q.fold(t, q.str(v)) + " = " + lit(s.Fold) + " ELSE false END"
	}
	return "false"
}

// compare: v sym s, numbers numerically, date-times as instants, strings
// byte-wise.
func (q *query) compare(s *condition.Scalar, sym, v string) string {
	switch s.Type {
	case model.Number:
		return "CASE WHEN " + q.isNum(v) + " THEN " + q.num(v) + " " + sym + " " + q.float(s.Num) + " ELSE false END"
	case model.DateTime:
		x := q.str(v)
		return "CASE WHEN " + q.isStr(v) + " AND " + q.isTime(x) + " THEN " + q.parseTime(x) + " " + sym + " " + q.ts(s.Time) + " ELSE false END"
	case model.String:
		x := q.str(v)
		if q.d == Postgres {
			x += ` COLLATE "C"`
		}
		return "CASE WHEN " + q.isStr(v) + " THEN " + x + " " + sym + " " + lit(s.Str) + " ELSE false END"
	}
	return "false"
}

// lookup resolves a dotted name in the JSON column col as model.Lookup
// does: the literal key first, else the part before the first dot, then
// the rest inside it.
func (q *query) lookup(col, path string) (string, error) {
	l, err := q.field(col, path)
	if err != nil {
		return "", err
	}
	head, rest, ok := strings.Cut(path, ".")
	if !ok {
		return l, nil
	}
	h, err := q.field(col, head)
	if err != nil {
		return "", err
	}
	r, err := q.lookup(h, rest)
	if err != nil {
		return "", err
	}
	return "COALESCE(" + l + ", " + r + ")", nil
}

func (q *query) field(col, key string) (string, error) {
	if q.d == Postgres {
		return "(" + col + "->" + lit(key) + ")", nil
	}
	if strings.ContainsAny(key, `"\`) {
		return "", fmt.Errorf("property name %q cannot be written as a DuckDB JSON path", key)
	}
	return "json_extract(" + col + ", " + lit(`$."`+key+`"`) + ")", nil
}

func (q *query) typ(v string) string {
	if q.d == Postgres {
		return "jsonb_typeof(" + v + ")"
	}
	return "json_type(" + v + ")"
}

func (q *query) typeName(t string) string {
	if q.d == Postgres {
		return lit(t)
	}
	return lit(map[string]string{"null": "NULL", "string": "VARCHAR", "boolean": "BOOLEAN", "array": "ARRAY", "object": "OBJECT"}[t])
}

func (q *query) isStr(v string) string  { return q.typ(v) + " = " + q.typeName("string") }
func (q *query) isBool(v string) string { return q.typ(v) + " = " + q.typeName("boolean") }
func (q *query) isArr(v string) string  { return q.typ(v) + " = " + q.typeName("array") }

func (q *query) isNum(v string) string {
	if q.d == Postgres {
		return q.typ(v) + " = 'number'"
	}
	return q.typ(v) + " IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT')"
}

// str is a JSON string's text.
func (q *query) str(v string) string {
	if q.d == Postgres {
		return "(" + v + " #>> '{}')"
	}
	return "json_extract_string(" + v + ", '$')"
}

func (q *query) num(v string) string {
	if q.d == Postgres {
		return "(" + v + ")::float8"
	}
	return "CAST(" + v + " AS DOUBLE)"
}

func (q *query) boolean(v string) string {
	if q.d == Postgres {
		return "(" + v + ")::boolean"
	}
	return "CAST(" + v + " AS BOOLEAN)"
}

func (q *query) float(f float64) string {
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if q.d == Postgres {
		return "CAST(" + lit(s) + " AS float8)"
	}
	return "CAST(" + lit(s) + " AS DOUBLE)"
}

func (q *query) fold(t *condition.Test, x string) string {
	if t.IgnoreCase {
		return "lower(" + x + ")"
	}
	return x
}

// rfc3339 is the shape model.ParseTime accepts.
const rfc3339 = `^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$`

func (q *query) isTime(x string) string {
	if q.d == Postgres {
		return x + " ~ " + lit(rfc3339)
	}
	return "regexp_full_match(" + x + ", " + lit(rfc3339) + ") AND TRY_CAST(" + x + " AS TIMESTAMPTZ) IS NOT NULL"
}

func (q *query) parseTime(x string) string {
	if q.d == Postgres {
		return "(" + x + ")::timestamptz"
	}
	return "TRY_CAST(" + x + " AS TIMESTAMPTZ)"
}

func (q *query) ts(t time.Time) string {
	return "TIMESTAMPTZ " + lit(t.UTC().Format(time.RFC3339Nano))
}

// anyElem: some element e of the JSON array v satisfies pred(e).
func (q *query) anyElem(v string, pred func(e string) string) string {
	if q.d == Postgres {
		return "EXISTS (SELECT 1 FROM jsonb_array_elements(" + v + ") AS x(el) WHERE " + pred("x.el") + ")"
	}
	return "len(list_filter(CAST(json_extract(" + v + ", '$[*]') AS JSON[]), lambda el: " + pred("el") + ")) > 0"
}

// lit quotes s as an SQL string literal.
func lit(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
