// Package bench holds Cohort's segment benchmarks: a suite of
// representative conditions over the generator's vocabulary, a fast loader
// that builds an index straight from generated messages, the segment
// timing runs behind `cohort-bench segments`, and the side-by-side
// comparison with PostgreSQL and DuckDB behind `cohort-bench peers`
// (including the translator from the condition language to SQL).
package bench

import (
	"fmt"

	"github.com/cohortdb/cohort/internal/condition"
)

// Case is one suite condition.
type Case struct {
	// Name identifies the case in reports; {"segment": Name} in a later
	// case refers to this case's members.
	Name string
	// What says in words what the condition selects.
	What string
	// JSON is the condition in the contract's condition language.
	JSON string
}

// Suite is the benchmark suite: conditions over the generator's
// vocabulary (internal/gen) that cover every form of the language the
// issue names, including the articles' examples. Cases are evaluated in
// order; a case may refer to an earlier one with {"segment": name}.
var Suite = []Case{
	{"plan_eq", "trait plan is pro",
		`{"trait":"plan","op":"eq","value":"pro"}`},
	{"city_in_ic", "city is London or Paris, ignoring case",
		`{"trait":"city","op":"in","value":["london","paris"],"ignore_case":true}`},
	{"age_between", "age between 25 and 34 (numbers only; string ages do not match)",
		`{"trait":"age","op":"between","value":[25,34]}`},
	{"tags_contains", "the tags array contains Pop",
		`{"trait":"tags","op":"contains","value":"Pop"}`},
	{"vip_not_exists", "no vip trait",
		`{"trait":"vip","op":"not_exists"}`},
	{"signed_up_14d", "signed_up_at within the last 14 days",
		`{"trait":"signed_up_at","op":"within_last","value":"14d"}`},
	{"address_city_ltv", "address.city is Berlin (nested trait) and ltv over 500",
		`{"and":[{"trait":"address.city","op":"eq","value":"Berlin"},{"trait":"ltv","op":"gt","value":500}]}`},
	{"ordered_7d", "Order Completed in the last 7 days",
		`{"event":"Order Completed","within":{"last":"7d"}}`},
	{"cart_3_electronics_7d", "Added To Cart exactly 3 times with product_category Electronics in the last 7 days",
		`{"event":"Added To Cart","where":[{"property":"product_category","op":"eq","value":"Electronics"}],"count":{"op":"eq","value":3},"within":{"last":"7d"}}`},
	{"song_pop_2017_1d", "Song Played at least 3 times, genre contains Pop, year 2017, in the last day",
		`{"event":"Song Played","where":[{"property":"genre","op":"contains","value":"Pop"},{"property":"year","op":"eq","value":2017}],"count":{"op":"gte","value":3},"within":{"last":"1d"}}`},
	{"no_app_open_30d", "did not open the app in 30 days (count 0)",
		`{"event":"App Opened","count":{"op":"eq","value":0},"within":{"last":"30d"}}`},
	{"pages_lt3_7d", "fewer than 3 Page Viewed in the last 7 days (includes none)",
		`{"event":"Page Viewed","count":{"op":"lt","value":3},"within":{"last":"7d"}}`},
	{"newsletter_5x", "Page Viewed from the newsletter at least 5 times, all history",
		`{"event":"Page Viewed","where":[{"property":"referrer","op":"eq","value":"newsletter"}],"count":{"op":"gte","value":5}}`},
	{"spend_sum_30d", "sum of Order Completed price over 499.995 in 30 days",
		`{"event":"Order Completed","aggregate":{"fn":"sum","property":"price","op":"gt","value":499.995},"within":{"last":"30d"}}`},
	{"song_avg_duration", "average Song Played duration over 250 s",
		`{"event":"Song Played","aggregate":{"fn":"avg","property":"duration","op":"gt","value":250}}`},
	{"viewed_3_categories", "Product Viewed in at least 3 distinct categories",
		`{"event":"Product Viewed","aggregate":{"fn":"distinct","property":"product_category","op":"gte","value":3}}`},
	{"search_prefix_ic_14d", "searched for something starting with 'electronics' (any case) in 14 days",
		`{"event":"Search","where":[{"property":"query","op":"starts_with","value":"electronics","ignore_case":true}],"within":{"last":"14d"}}`},
	{"checkout_range_2to4", "Checkout Started 2 to 4 times between 10 and 20 May",
		`{"event":"Checkout Started","count":{"op":"between","value":[2,4]},"within":{"from":"2026-05-10T00:00:00Z","to":"2026-05-20T12:00:00Z"}}`},
	{"brand_nested_2x_14d", "Added To Cart of product.brand 'Books Co' at least twice in 14 days (nested property)",
		`{"event":"Added To Cart","where":[{"property":"product.brand","op":"eq","value":"Books Co"}],"count":{"op":"gte","value":2},"within":{"last":"14d"}}`},
	{"rare_event", "did a rare event (Rare Event 7) at all",
		`{"event":"Rare Event 7"}`},
	{"nested_and_or_not", "pro or enterprise, and (ordered in 14 days or ltv over 800), and not in London (any case)",
		`{"and":[{"trait":"plan","op":"in","value":["pro","enterprise"]},{"or":[{"event":"Order Completed","within":{"last":"14d"}},{"trait":"ltv","op":"gt","value":800}]},{"not":{"trait":"city","op":"eq","value":"london","ignore_case":true}}]}`},
	{"rules_one_inverted", "rules of criteria: age 21+, viewed Books in 30 days, NOT ordered in 30 days, plan not free",
		`{"and":[{"trait":"age","op":"gte","value":21},{"event":"Product Viewed","where":[{"property":"product_category","op":"eq","value":"Books"}],"within":{"last":"30d"}},{"not":{"event":"Order Completed","within":{"last":"30d"}}},{"trait":"plan","op":"neq","value":"free"}]}`},
	{"except_segment", "everyone except the members of segment cart_3_electronics_7d",
		`{"not":{"segment":"cart_3_electronics_7d"}}`},
	{"except_segment_and", "no App Opened in 30 days, and not in segment rules_one_inverted",
		`{"and":[{"segment":"no_app_open_30d"},{"not":{"segment":"rules_one_inverted"}}]}`},
}

// Parsed is a suite case with its parsed condition.
type Parsed struct {
	Case
	Node *condition.Node
}

// ParseSuite parses every case and checks that segment references name
// earlier cases.
func ParseSuite(cases []Case) ([]Parsed, error) {
	out := make([]Parsed, 0, len(cases))
	seen := map[string]bool{}
	for _, c := range cases {
		n, err := condition.Parse([]byte(c.JSON))
		if err != nil {
			return nil, fmt.Errorf("suite case %s: %w", c.Name, err)
		}
		for _, ref := range n.SegmentRefs() {
			if !seen[ref] {
				return nil, fmt.Errorf("suite case %s refers to segment %q, which is not an earlier case", c.Name, ref)
			}
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("suite case %s appears twice", c.Name)
		}
		seen[c.Name] = true
		out = append(out, Parsed{Case: c, Node: n})
	}
	return out, nil
}
