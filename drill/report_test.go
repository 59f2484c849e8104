package drill

import (
	"fmt"
	"strings"
)

// Result is what one drill did and measured: a row of RELIABILITY.md.
type Result struct {
	order int

	// Drill names the drill.
	Drill string `json:"drill"`
	// Load is the load held during the drill.
	Load string `json:"load"`
	// Faults are the faults injected.
	Faults string `json:"faults"`
	// BadInputs are the bad inputs tried.
	BadInputs string `json:"bad_inputs"`
	// Accepted, Delivered, Duplicated and Lost count events: accepted by
	// the API, received at least once, received more than once (extra
	// requests), accepted but neither delivered nor visibly dead.
	Accepted   int `json:"accepted"`
	Delivered  int `json:"delivered"`
	Duplicated int `json:"duplicated"`
	Lost       int `json:"lost"`
	// Figures are the drill's other measurements, in order.
	Figures []Figure `json:"figures"`
	// Rerun is the command that runs this drill alone.
	Rerun string `json:"rerun"`
}

// Figure is one named measurement.
type Figure struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

func (r *Result) add(name, format string, args ...any) {
	r.Figures = append(r.Figures, Figure{Name: name, Value: fmt.Sprintf(format, args...)})
}

// Table renders results as the Markdown tables of RELIABILITY.md: one row
// per drill, then each drill's figures.
func Table(results []*Result) string {
	var b strings.Builder
	b.WriteString("| drill | load held | faults injected | bad inputs tried | accepted | delivered | duplicated | lost |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %d | %d | %d | %d |\n", r.Drill, r.Load, r.Faults, r.BadInputs, r.Accepted, r.Delivered, r.Duplicated, r.Lost)
	}
	for _, r := range results {
		fmt.Fprintf(&b, "\n%s (rerun: `%s`)\n\n| figure | value |\n|---|---|\n", r.Drill, r.Rerun)
		for _, f := range r.Figures {
			fmt.Fprintf(&b, "| %s | %s |\n", f.Name, f.Value)
		}
	}
	return b.String()
}
