package console

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"
)

// chart is the data of a line chart with optional bands, drawn as SVG on
// the server by the "svg" template. X values are numbers: Unix seconds for
// a series' buckets, buckets from the origin for backtest traces.
type chart struct {
	// ID prefixes the ids of the chart's elements; unique in a page.
	ID string
	// Title is the chart's accessible name and Desc its description.
	Title, Desc string
	// Bands are drawn first, then Lines, then Markers.
	Bands   []band
	Lines   []line
	Markers []line
	// Ticks are the x positions that may carry a label, in order.
	Ticks []tick
	// Rule, when set, draws a vertical rule at that x with RuleLabel.
	Rule      *float64
	RuleLabel string
}

// line is a polyline, or for Markers a set of points.
type line struct {
	// Name is shown in the legend; Class selects its style (see style.css).
	Name, Class string
	Points      []point
}

type point struct{ X, Y float64 }

// band is a filled area between Lo and Hi over X.
type band struct {
	Name, Class string
	X, Lo, Hi   []float64
}

// tick is a labelled position on an axis.
type tick struct {
	Pos   float64
	Label string
}

// svgChart is a chart laid out for one size, ready for the "svg" template.
type svgChart struct {
	ID, Title, Desc string
	W, H            int
	// Plot area.
	Left, Top, Right, Bottom float64
	Bands                    []svgShape
	Lines                    []svgShape
	Dots                     []svgDot
	XTicks, YTicks           []tick
	Rule                     *tick
	Empty                    bool
}

type svgShape struct{ Class, D string }

type svgDot struct {
	Class  string
	CX, CY float64
}

// margins of the plot area inside the SVG, in its units.
const (
	marginLeft   = 44
	marginRight  = 10
	marginTop    = 12
	marginBottom = 26
)

// layout lays the chart out in a w x h box with at most maxTicks x labels.
func (c *chart) layout(suffix string, w, h, maxTicks int) svgChart {
	s := svgChart{ID: c.ID + "-" + suffix, Title: c.Title, Desc: c.Desc, W: w, H: h,
		Left: marginLeft, Top: marginTop, Right: float64(w - marginRight), Bottom: float64(h - marginBottom)}
	xmin, xmax := math.Inf(1), math.Inf(-1)
	ymin, ymax := 0.0, 0.0
	see := func(x, y float64) {
		if math.IsNaN(x) || math.IsNaN(y) || math.IsInf(x, 0) || math.IsInf(y, 0) {
			return
		}
		xmin, xmax = min(xmin, x), max(xmax, x)
		ymin, ymax = min(ymin, y), max(ymax, y)
	}
	for _, b := range c.Bands {
		for i, x := range b.X {
			see(x, b.Lo[i])
			see(x, b.Hi[i])
		}
	}
	for _, ls := range [][]line{c.Lines, c.Markers} {
		for _, l := range ls {
			for _, p := range l.Points {
				see(p.X, p.Y)
			}
		}
	}
	if xmin > xmax {
		s.Empty = true
		return s
	}
	if xmin == xmax {
		xmin, xmax = xmin-1, xmax+1
	}
	lo, hi, step := niceScale(ymin, ymax, 5)
	sx := func(x float64) float64 { return s.Left + (x-xmin)/(xmax-xmin)*(s.Right-s.Left) }
	sy := func(y float64) float64 { return s.Bottom - (y-lo)/(hi-lo)*(s.Bottom-s.Top) }

	for _, b := range c.Bands {
		var d strings.Builder
		for i, x := range b.X {
			d.WriteString(cmd(i == 0, sx(x), sy(b.Lo[i])))
		}
		for i := len(b.X) - 1; i >= 0; i-- {
			d.WriteString(cmd(false, sx(b.X[i]), sy(b.Hi[i])))
		}
		if len(b.X) > 0 {
			d.WriteString("Z")
			s.Bands = append(s.Bands, svgShape{Class: b.Class, D: d.String()})
		}
	}
	for _, l := range c.Lines {
		var d strings.Builder
		for i, p := range l.Points {
			d.WriteString(cmd(i == 0, sx(p.X), sy(p.Y)))
		}
		if len(l.Points) > 0 {
			s.Lines = append(s.Lines, svgShape{Class: l.Class, D: d.String()})
		}
		if len(l.Points) == 1 {
			s.Dots = append(s.Dots, svgDot{Class: l.Class, CX: sx(l.Points[0].X), CY: sy(l.Points[0].Y)})
		}
	}
	for _, m := range c.Markers {
		for _, p := range m.Points {
			s.Dots = append(s.Dots, svgDot{Class: m.Class, CX: round1(sx(p.X)), CY: round1(sy(p.Y))})
		}
	}
	for v := lo; v <= hi+step/2; v += step {
		s.YTicks = append(s.YTicks, tick{Pos: round1(sy(v)), Label: compact(v)})
	}
	var ticks []tick
	for _, t := range c.Ticks {
		if t.Pos >= xmin && t.Pos <= xmax {
			ticks = append(ticks, t)
		}
	}
	every := max(1, (len(ticks)+maxTicks-1)/max(maxTicks, 1))
	for i := 0; i < len(ticks); i += every {
		s.XTicks = append(s.XTicks, tick{Pos: round1(sx(ticks[i].Pos)), Label: ticks[i].Label})
	}
	if c.Rule != nil && *c.Rule >= xmin && *c.Rule <= xmax {
		s.Rule = &tick{Pos: round1(sx(*c.Rule)), Label: c.RuleLabel}
	}
	return s
}

// cmd returns an SVG path command moving or drawing to (x, y).
func cmd(move bool, x, y float64) string {
	op := "L"
	if move {
		op = "M"
	}
	return op + strconv.FormatFloat(round1(x), 'f', -1, 64) + "," + strconv.FormatFloat(round1(y), 'f', -1, 64)
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

// niceScale returns an axis range covering [lo, hi] whose ends and step
// are round numbers (1, 2 or 5 times a power of ten), with about n steps.
func niceScale(lo, hi float64, n int) (from, to, step float64) {
	if hi <= lo {
		hi = lo + 1
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step = 10 * mag
	for _, m := range []float64{1, 2, 5} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	return math.Floor(lo/step) * step, math.Ceil(hi/step) * step, step
}

// compact formats an axis value shortly: 0, 2.5, 40, 1.2k, 3M.
func compact(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return trimFloat(v/1e6) + "M"
	case a >= 1e4:
		return trimFloat(v/1e3) + "k"
	default:
		return trimFloat(v)
	}
}

func trimFloat(v float64) string {
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}

// legend returns the chart's named bands, lines and markers, in drawing
// order, for the legend below it.
func (c *chart) legend() []line {
	var out []line
	for _, b := range c.Bands {
		out = append(out, line{Name: b.Name, Class: b.Class})
	}
	for _, ls := range [][]line{c.Lines, c.Markers} {
		for _, l := range ls {
			if l.Name != "" && len(l.Points) > 0 {
				out = append(out, line{Name: l.Name, Class: l.Class})
			}
		}
	}
	return slices.CompactFunc(out, func(a, b line) bool { return cmp.Compare(a.Name, b.Name) == 0 && a.Class == b.Class })
}
