package plot

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
)

// drawn is a point marker as found in the SVG output.
type drawn struct {
	series, label string
	x, y          float64
}

// parsed is what the tests extract from an SVG document.
type parsed struct {
	points       []drawn
	xTicks       []string
	yTicks       []string
	legend       []string
	dashedLines  int
	polylines    int
	rootElement  string
	allTextNodes []string
}

// parse walks every XML token of doc, failing the test on malformed XML.
func parse(t *testing.T, doc []byte) parsed {
	t.Helper()
	var p parsed
	dec := xml.NewDecoder(bytes.NewReader(doc))
	var stack []xml.StartElement
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("output is not well-formed XML: %v\n%s", err, doc)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if p.rootElement == "" {
				p.rootElement = tok.Name.Local
			}
			stack = append(stack, tok.Copy())
			switch tok.Name.Local {
			case "g":
				if attr(tok, "class") == "point" {
					var d drawn
					d.series, d.label = attr(tok, "data-series"), attr(tok, "data-label")
					if _, err := fmt.Sscanf(attr(tok, "transform"), "translate(%g,%g)", &d.x, &d.y); err != nil {
						t.Fatalf("bad point transform %q: %v", attr(tok, "transform"), err)
					}
					p.points = append(p.points, d)
				}
			case "polyline":
				p.polylines++
				if attr(tok, "stroke-dasharray") != "" {
					p.dashedLines++
				}
			}
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			s := strings.TrimSpace(string(tok))
			if s == "" || len(stack) == 0 {
				continue
			}
			p.allTextNodes = append(p.allTextNodes, s)
			top := stack[len(stack)-1]
			switch {
			case attr(top, "class") == "tick x":
				p.xTicks = append(p.xTicks, s)
			case attr(top, "class") == "tick y":
				p.yTicks = append(p.yTicks, s)
			case len(stack) >= 2 && attr(stack[len(stack)-2], "class") == "legend":
				p.legend = append(p.legend, s)
			}
		}
	}
	if p.rootElement != "svg" {
		t.Fatalf("root element = %q, want svg", p.rootElement)
	}
	return p
}

func attr(e xml.StartElement, name string) string {
	for _, a := range e.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func render(t *testing.T, c Chart) ([]byte, parsed) {
	t.Helper()
	out, err := c.SVG()
	if err != nil {
		t.Fatalf("SVG() error: %v", err)
	}
	return out, parse(t, out)
}

func sample() Chart {
	return Chart{
		Title:  "Polling cost vs detection latency",
		XLabel: "status calls per job",
		YLabel: "p95 detection latency (s)",
		LogX:   true,
		LogY:   true,
		Note:   "amd64, commit abc1234",
		Series: []Series{
			{Name: "fixed interval (Temporal timer)", Points: []Point{
				{X: 240, Y: 5.2, Label: "5s"}, {X: 120, Y: 10.4, Label: "10s"},
				{X: 40, Y: 31, Label: "30s"}, {X: 20, Y: 62, Label: "60s"},
			}},
			{Name: "exponential backoff", Dashed: true, Points: []Point{
				{X: 30, Y: 40, Label: "x2"}, {X: 15, Y: 90, Label: "x4"},
			}},
			{Name: "ours (learned schedule)", Points: []Point{
				{X: 12, Y: 6, Label: "P=5s"}, {X: 7, Y: 11, Label: "P=10s"}, {X: 4, Y: 33, Label: "P=30s"},
			}},
		},
	}
}

func TestSVGContainsSeriesAndLabels(t *testing.T) {
	c := sample()
	_, p := render(t, c)
	if !slices.Equal(p.legend, []string{"fixed interval (Temporal timer)", "exponential backoff", "ours (learned schedule)"}) {
		t.Errorf("legend = %q", p.legend)
	}
	var want, got []string
	for _, s := range c.Series {
		for _, pt := range s.Points {
			want = append(want, s.Name+"/"+pt.Label)
		}
	}
	for _, d := range p.points {
		got = append(got, d.series+"/"+d.label)
	}
	if !slices.Equal(got, want) {
		t.Errorf("drawn points = %q, want %q", got, want)
	}
	for _, s := range want {
		label := s[strings.Index(s, "/")+1:]
		if !slices.Contains(p.allTextNodes, label) {
			t.Errorf("point label %q not drawn as text", label)
		}
	}
	for _, s := range []string{c.Title, c.XLabel, c.YLabel, c.Note} {
		if !slices.Contains(p.allTextNodes, s) {
			t.Errorf("text %q missing", s)
		}
	}
	if p.polylines != 3 || p.dashedLines != 1 {
		t.Errorf("polylines = %d (dashed %d), want 3 (dashed 1)", p.polylines, p.dashedLines)
	}
}

func TestSVGEscapesText(t *testing.T) {
	c := Chart{
		Title:  `A & B <"quoted"> 'x'`,
		XLabel: "calls < 10",
		Note:   "a&b",
		Series: []Series{{Name: "R&D <fast>", Points: []Point{{X: 1, Y: 2, Label: "p<5 & q>1"}, {X: 2, Y: 3, Label: `"q"`}}}},
	}
	out, p := render(t, c)
	for _, raw := range []string{"R&D", "<fast>", "p<5", "A & B", `<"quoted">`, "a&b"} {
		if bytes.Contains(out, []byte(raw)) {
			t.Errorf("output contains unescaped %q", raw)
		}
	}
	for _, esc := range []string{"R&amp;D &lt;fast&gt;", "p&lt;5 &amp; q&gt;1", "A &amp; B &lt;&#34;quoted&#34;&gt; &#39;x&#39;"} {
		if !bytes.Contains(out, []byte(esc)) {
			t.Errorf("output lacks escaped %q", esc)
		}
	}
	// After decoding, the original strings come back unchanged.
	if !slices.Equal(p.legend, []string{"R&D <fast>"}) {
		t.Errorf("legend = %q", p.legend)
	}
	if p.points[0].series != "R&D <fast>" || p.points[0].label != "p<5 & q>1" || p.points[1].label != `"q"` {
		t.Errorf("points = %+v", p.points)
	}
	for _, s := range []string{c.Title, c.XLabel, c.Note, "p<5 & q>1"} {
		if !slices.Contains(p.allTextNodes, s) {
			t.Errorf("text %q missing after decoding", s)
		}
	}
}

func TestLogTicks(t *testing.T) {
	c := Chart{LogX: true, LogY: true, Series: []Series{{Name: "s", Points: []Point{{X: 3, Y: 0.02}, {X: 250, Y: 0.9}}}}}
	_, p := render(t, c)
	for _, want := range []string{"5", "10", "20", "50", "100", "200"} {
		if !slices.Contains(p.xTicks, want) {
			t.Errorf("x ticks %q lack %q", p.xTicks, want)
		}
	}
	for _, want := range []string{"0.02", "0.05", "0.1", "0.2", "0.5"} {
		if !slices.Contains(p.yTicks, want) {
			t.Errorf("y ticks %q lack %q", p.yTicks, want)
		}
	}
	for _, tick := range p.xTicks {
		if !strings.ContainsAny(tick[:1], "125") || strings.Trim(tick[1:], "0") != "" {
			t.Errorf("x tick %q is not a 1-2-5 decade value", tick)
		}
	}

	// Many decades: only powers of ten.
	got := logTicks(math.Log10(0.5), math.Log10(2e6))
	if want := []float64{1, 10, 100, 1000, 1e4, 1e5, 1e6}; !slices.Equal(got, want) {
		t.Errorf("logTicks(0.5..2e6) = %v, want %v", got, want)
	}
	// Less than a decade still yields several ticks.
	if got := (axis{log: true, lo: math.Log10(3), hi: math.Log10(4)}).ticks(); len(got) < 2 {
		t.Errorf("ticks for 3..4 on a log axis = %v, want at least 2", got)
	}
}

func TestLinearTicks(t *testing.T) {
	got := linearTicks(-3, 104)
	if want := []float64{0, 20, 40, 60, 80, 100}; !slices.Equal(got, want) {
		t.Errorf("linearTicks(-3, 104) = %v, want %v", got, want)
	}
	got = linearTicks(0.05, 0.72)
	if want := []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7}; !slices.Equal(got, want) {
		t.Errorf("linearTicks(0.05, 0.72) = %v, want %v", got, want)
	}
	for _, r := range [][2]float64{{0, 1}, {0, 7}, {-50, 50}, {1e6, 3.3e6}, {0.001, 0.0042}, {12, 13}, {0.5, 99.5}, {-7.3, 1e3}} {
		ticks := linearTicks(r[0], r[1])
		if len(ticks) < 4 || len(ticks) > 8 {
			t.Errorf("linearTicks(%v, %v) = %v: want 4..8 ticks", r[0], r[1], ticks)
		}
		for i, v := range ticks {
			if v < r[0] || v > r[1] || (i > 0 && v <= ticks[i-1]) {
				t.Errorf("linearTicks(%v, %v) = %v: out of range or unordered", r[0], r[1], ticks)
			}
		}
	}
	// Rendered linear ticks are formatted without float noise.
	c := Chart{Series: []Series{{Name: "s", Points: []Point{{X: 0.1, Y: 1}, {X: 0.7, Y: 2}}}}}
	_, p := render(t, c)
	for _, tick := range p.xTicks {
		if len(tick) > 4 {
			t.Errorf("x tick %q is not round", tick)
		}
	}
}

func TestMarkerPositions(t *testing.T) {
	for _, log := range []bool{false, true} {
		c := Chart{LogX: log, LogY: log, Series: []Series{
			{Name: "a", Points: []Point{{X: 1, Y: 1, Label: "low"}, {X: 10, Y: 100, Label: "high"}}},
			{Name: "b", Points: []Point{{X: 5, Y: 50, Label: "mid"}}},
		}}
		_, p := render(t, c)
		pos := map[string]drawn{}
		for _, d := range p.points {
			pos[d.label] = d
			if d.x <= marginLeft || d.x >= width || d.y <= marginTop || d.y >= height-marginBottom {
				t.Errorf("log=%v: point %q at (%v,%v) is on or outside the frame", log, d.label, d.x, d.y)
			}
		}
		low, mid, high := pos["low"], pos["mid"], pos["high"]
		if !(low.x < mid.x && mid.x < high.x) {
			t.Errorf("log=%v: x pixels low=%v mid=%v high=%v, want increasing", log, low.x, mid.x, high.x)
		}
		if !(low.y > mid.y && mid.y > high.y) {
			t.Errorf("log=%v: y pixels low=%v mid=%v high=%v, want decreasing (larger Y is higher)", log, low.y, mid.y, high.y)
		}
	}
}

func TestSinglePoint(t *testing.T) {
	for _, log := range []bool{false, true} {
		_, p := render(t, Chart{LogX: log, LogY: log, Series: []Series{{Name: "one", Points: []Point{{X: 7, Y: 7}}}}})
		if len(p.points) != 1 || len(p.xTicks) < 2 || len(p.yTicks) < 2 {
			t.Errorf("log=%v: points %v, x ticks %q, y ticks %q", log, p.points, p.xTicks, p.yTicks)
		}
		if p.polylines != 0 {
			t.Errorf("log=%v: a single point drew %d lines", log, p.polylines)
		}
	}
}

func TestDistinctStyles(t *testing.T) {
	seen := map[string]int{}
	for i := range 12 {
		style := marker(i)
		if j, ok := seen[style]; ok {
			t.Errorf("series %d and %d share marker %s", i, j, style)
		}
		seen[style] = i
	}
	if marker(0)[:7] == marker(1)[:7] {
		t.Errorf("first two series use the same shape")
	}
}

func TestErrors(t *testing.T) {
	pts := []Point{{X: 1, Y: 1}}
	for name, c := range map[string]Chart{
		"no series":    {},
		"empty series": {Series: []Series{{Name: "ok", Points: pts}, {Name: "empty"}}},
		"NaN X":        {Series: []Series{{Name: "s", Points: []Point{{X: math.NaN(), Y: 1}}}}},
		"NaN Y":        {Series: []Series{{Name: "s", Points: []Point{{X: 1, Y: math.NaN()}}}}},
		"+Inf X":       {Series: []Series{{Name: "s", Points: []Point{{X: math.Inf(1), Y: 1}}}}},
		"-Inf Y":       {Series: []Series{{Name: "s", Points: []Point{{X: 1, Y: math.Inf(-1)}}}}},
		"zero log X":   {LogX: true, Series: []Series{{Name: "s", Points: []Point{{X: 1, Y: 1}, {X: 0, Y: 1}}}}},
		"neg log Y":    {LogY: true, Series: []Series{{Name: "s", Points: []Point{{X: 1, Y: -2}}}}},
	} {
		out, err := c.SVG()
		if err == nil || out != nil {
			t.Errorf("%s: SVG() = %d bytes, err %v; want an error", name, len(out), err)
		}
	}
	// Non-positive values are fine on linear axes.
	c := Chart{LogY: true, Series: []Series{{Name: "s", Points: []Point{{X: -5, Y: 1}, {X: 0, Y: 2}}}}}
	if _, err := c.SVG(); err != nil {
		t.Errorf("non-positive X on a linear axis: %v", err)
	}
}

func TestDeterministic(t *testing.T) {
	first, _ := render(t, sample())
	for range 5 {
		again, _ := render(t, sample())
		if !bytes.Equal(first, again) {
			t.Fatal("output differs between identical renders")
		}
	}
	c := sample()
	c.Series[0].Points[0].Y *= 1.5
	changed, _ := render(t, c)
	if bytes.Equal(first, changed) {
		t.Error("output did not change when a point moved")
	}
}
