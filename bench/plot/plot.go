// Package plot renders small scatter charts with lines as standalone SVG
// documents. It is used by the benchmark to write charts into docs/ and
// depends on the standard library only.
package plot

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Point is one measured setting.
type Point struct {
	X, Y  float64
	Label string
}

// Series is one strategy's points, joined in the given order.
type Series struct {
	Name   string
	Points []Point
	Dashed bool
}

// Chart describes a scatter chart with lines.
type Chart struct {
	Title, XLabel, YLabel string
	LogX, LogY            bool   // logarithmic axes (values must be > 0)
	Note                  string // one line printed under the chart, optional
	Series                []Series
}

const (
	width, height = 760, 480
	marginLeft    = 76
	marginTop     = 48
	marginBottom  = 72   // tick labels, axis label and note
	padFrac       = 0.06 // domain padding as a fraction of the data span
)

// palette is Okabe-Ito without yellow, which is unreadable on white.
var palette = []string{"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"}

const numShapes = 6

// SVG renders the chart as a standalone SVG document.
func (c Chart) SVG() ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	maxName := 0
	for _, s := range c.Series {
		maxName = max(maxName, utf8.RuneCountInString(s.Name))
	}
	legendW := min(max(40+13*maxName/2, 100), 300) // about 6.5 px per character
	right := float64(width - 16 - legendW)
	bottom := float64(height - marginBottom)

	var xs, ys []float64
	for _, s := range c.Series {
		for _, p := range s.Points {
			xs, ys = append(xs, p.X), append(ys, p.Y)
		}
	}
	ax := newAxis(xs, c.LogX, marginLeft, right)
	ay := newAxis(ys, c.LogY, bottom, marginTop) // larger Y is higher up

	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	w(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif">`+"\n", width, height, width, height)
	w(`<rect width="100%%" height="100%%" fill="#ffffff"/>` + "\n")

	// Grid and tick labels.
	for _, v := range ax.ticks() {
		x := ax.px(v)
		w(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#dddddd"/>`+"\n", f(x), f(marginTop), f(x), f(bottom))
		w(`<text class="tick x" x="%s" y="%s" font-size="11" text-anchor="middle">%s</text>`+"\n", f(x), f(bottom+16), num(v))
	}
	for _, v := range ay.ticks() {
		y := ay.px(v)
		w(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#dddddd"/>`+"\n", f(marginLeft), f(y), f(right), f(y))
		w(`<text class="tick y" x="%s" y="%s" font-size="11" text-anchor="end">%s</text>`+"\n", f(marginLeft-6), f(y+4), num(v))
	}
	w(`<rect x="%s" y="%s" width="%s" height="%s" fill="none" stroke="#333333"/>`+"\n",
		f(marginLeft), f(marginTop), f(right-marginLeft), f(bottom-marginTop))

	// Title, axis labels, note.
	midX, midY := (marginLeft+right)/2, (marginTop+bottom)/2
	w(`<text x="%s" y="28" font-size="16" font-weight="bold" text-anchor="middle">%s</text>`+"\n", f(midX), esc(c.Title))
	w(`<text x="%s" y="%s" font-size="13" text-anchor="middle">%s</text>`+"\n", f(midX), f(bottom+40), esc(c.XLabel))
	w(`<text x="18" y="%s" font-size="13" text-anchor="middle" transform="rotate(-90 18 %s)">%s</text>`+"\n", f(midY), f(midY), esc(c.YLabel))
	if c.Note != "" {
		w(`<text x="8" y="%d" font-size="10" fill="#555555">%s</text>`+"\n", height-8, esc(c.Note))
	}

	// Lines first, so that every marker is drawn on top of every line.
	for i, s := range c.Series {
		if len(s.Points) < 2 {
			continue
		}
		pts := make([]string, len(s.Points))
		for j, p := range s.Points {
			pts[j] = f(ax.px(p.X)) + "," + f(ay.px(p.Y))
		}
		w(`<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`+"\n", color(i), dash(s.Dashed), strings.Join(pts, " "))
	}
	for i, s := range c.Series {
		for _, p := range s.Points {
			x, y := ax.px(p.X), ay.px(p.Y)
			w(`<g class="point" data-series="%s" data-label="%s" transform="translate(%s,%s)">`, esc(s.Name), esc(p.Label), f(x), f(y))
			w(`%s`, marker(i))
			if p.Label != "" {
				lx, anchor := 7, "start"
				if x > right-50 { // keep labels near the right edge inside the frame
					lx, anchor = -7, "end"
				}
				w(`<text x="%d" y="-7" font-size="10" text-anchor="%s" fill="#333333">%s</text>`, lx, anchor, esc(p.Label))
			}
			w("</g>\n")
		}
	}

	// Legend, to the right of the plot area.
	lx := right + 16
	for i, s := range c.Series {
		y := float64(marginTop + 10 + 20*i)
		w(`<g class="legend" transform="translate(%s,%s)">`, f(lx), f(y))
		w(`<line x1="0" y1="0" x2="28" y2="0" stroke="%s" stroke-width="2"%s/>`, color(i), dash(s.Dashed))
		w(`<g transform="translate(14,0)">%s</g>`, marker(i))
		w(`<text x="36" y="4" font-size="12">%s</text></g>`+"\n", esc(s.Name))
	}
	w("</svg>\n")
	return b.Bytes(), nil
}

func (c Chart) validate() error {
	if len(c.Series) == 0 {
		return errors.New("plot: chart has no series")
	}
	for _, s := range c.Series {
		if len(s.Points) == 0 {
			return fmt.Errorf("plot: series %q has no points", s.Name)
		}
		for j, p := range s.Points {
			for _, v := range []struct {
				axis string
				val  float64
				log  bool
			}{{"X", p.X, c.LogX}, {"Y", p.Y, c.LogY}} {
				if math.IsNaN(v.val) || math.IsInf(v.val, 0) {
					return fmt.Errorf("plot: series %q point %d: %s is %v", s.Name, j, v.axis, v.val)
				}
				if v.log && v.val <= 0 {
					return fmt.Errorf("plot: series %q point %d: %s = %v on a log axis must be > 0", s.Name, j, v.axis, v.val)
				}
			}
		}
	}
	return nil
}

// axis maps data values to pixels. lo and hi bound the padded domain in
// transformed units (log10 of the value on a log axis).
type axis struct {
	log            bool
	lo, hi, p0, p1 float64
}

func newAxis(vals []float64, log bool, p0, p1 float64) axis {
	a := axis{log: log, lo: math.Inf(1), hi: math.Inf(-1), p0: p0, p1: p1}
	for _, v := range vals {
		a.lo, a.hi = min(a.lo, a.t(v)), max(a.hi, a.t(v))
	}
	span := a.hi - a.lo
	if span <= 1e-12*max(math.Abs(a.lo), 1) { // a single value: invent a span around it
		span = 1
		if !log && a.lo != 0 {
			span = math.Abs(a.lo) * 0.2
		}
		a.lo, a.hi = a.lo-span/2, a.hi+span/2
	}
	a.lo, a.hi = a.lo-padFrac*span, a.hi+padFrac*span
	return a
}

func (a axis) t(v float64) float64 {
	if a.log {
		return math.Log10(v)
	}
	return v
}

func (a axis) px(v float64) float64 {
	return a.p0 + (a.t(v)-a.lo)/(a.hi-a.lo)*(a.p1-a.p0)
}

// ticks returns the tick values (untransformed) inside the domain.
func (a axis) ticks() []float64 {
	if !a.log {
		return linearTicks(a.lo, a.hi)
	}
	if t := logTicks(a.lo, a.hi); len(t) >= 2 {
		return t
	}
	return linearTicks(math.Pow(10, a.lo), math.Pow(10, a.hi)) // less than a decade
}

// logTicks returns 1-2-5 ticks per decade between 10^lo and 10^hi, or only
// powers of ten (every k-th decade) when the range spans many decades.
func logTicks(lo, hi float64) []float64 {
	mults, step := []float64{1, 2, 5}, 1
	if hi-lo > 3.5 {
		mults, step = []float64{1}, int(math.Ceil((hi-lo)/8))
	}
	var out []float64
	for d := int(math.Floor(lo)); d <= int(math.Ceil(hi)); d++ {
		if d%step != 0 {
			continue
		}
		for _, m := range mults {
			v := clean(m * math.Pow10(d))
			if l := math.Log10(v); l >= lo-1e-9 && l <= hi+1e-9 {
				out = append(out, v)
			}
		}
	}
	return out
}

// linearTicks returns the multiples of the smallest round step
// (1, 2, 2.5 or 5 times a power of ten) giving at most 8 ticks in [lo, hi].
func linearTicks(lo, hi float64) []float64 {
	mag := math.Pow10(int(math.Floor(math.Log10(hi-lo))) - 1)
	var step float64
	for _, m := range []float64{1, 2, 2.5, 5, 10, 20, 25, 50, 100} {
		step = m * mag
		if math.Floor(hi/step)-math.Ceil(lo/step) < 8 {
			break
		}
	}
	var out []float64
	for i := math.Ceil(lo / step); i <= math.Floor(hi/step); i++ {
		out = append(out, clean(i*step))
	}
	return out
}

// clean removes floating-point noise such as 0.30000000000000004 and -0.
func clean(v float64) float64 {
	v, _ = strconv.ParseFloat(strconv.FormatFloat(v, 'g', 12, 64), 64)
	if v == 0 {
		return 0
	}
	return v
}

// num formats a tick value compactly.
func num(v float64) string {
	if a := math.Abs(v); v != 0 && (a < 1e-4 || a >= 1e7) {
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// f formats a pixel coordinate with fixed precision.
func f(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

// esc escapes text for use in XML character data and attribute values.
func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s)) // writes to a strings.Builder never fail
	return b.String()
}

func color(i int) string { return palette[i%len(palette)] }

func dash(d bool) string {
	if d {
		return ` stroke-dasharray="6 4"`
	}
	return ""
}

// marker returns series i's marker centred on the origin.
func marker(i int) string {
	style := fmt.Sprintf(`fill="%s" stroke="#ffffff" stroke-width="1"`, color(i))
	switch i % numShapes {
	case 0:
		return `<circle r="4.5" ` + style + `/>`
	case 1:
		return `<rect x="-4" y="-4" width="8" height="8" ` + style + `/>`
	case 2:
		return `<polygon points="0,-5.5 5,3.5 -5,3.5" ` + style + `/>`
	case 3:
		return `<polygon points="0,-6 5,0 0,6 -5,0" ` + style + `/>`
	case 4:
		return `<polygon points="0,5.5 5,-3.5 -5,-3.5" ` + style + `/>`
	default:
		return `<path d="M-4,-4L4,4M-4,4L4,-4" fill="none" stroke="` + color(i) + `" stroke-width="2.5"/>`
	}
}
