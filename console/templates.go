package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"math"
	"strconv"
	"time"
)

//go:embed web
var webFS embed.FS

// static holds the served assets; assetVersion maps each to a hash of its
// contents, which its URL carries so browsers can cache it for good.
var (
	static, _    = fs.Sub(webFS, "web")
	assetVersion = hashAssets("style.css", "live.js")
)

func hashAssets(names ...string) map[string]string {
	out := make(map[string]string, len(names))
	for _, n := range names {
		b, err := fs.ReadFile(static, n)
		if err != nil {
			panic(err) // the embedded files are part of the binary
		}
		sum := sha256.Sum256(b)
		out[n] = hex.EncodeToString(sum[:6])
	}
	return out
}

// funcs are the template functions. Every value from events (store, SKU,
// model names, reasons) reaches pages only through html/template's
// contextual escaping.
var funcs = template.FuncMap{
	"asset": func(name string) string { return "/console/static/" + name + "?v=" + assetVersion[name] },
	"count": func(v any) string {
		switch x := v.(type) {
		case int:
			return formatCount(float64(x))
		case float64:
			return formatCount(x)
		}
		return fmt.Sprint(v)
	},
	"qty":       formatQty,
	"rate":      formatRate,
	"pct":       formatPct,
	"when":      formatTime,
	"trend":     trendWord,
	"seriesURL": seriesPath,
	"iso": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	},
	"unix": func(t time.Time) int64 {
		if t.IsZero() {
			return 0
		}
		return t.Unix()
	},
	"share":  func(v float64) string { return strconv.FormatFloat(math.Round(v*1000)/10, 'f', -1, 64) + "%" },
	"signed": func(v float64) string { return fmt.Sprintf("%+.2f", v) },
	"list":   func(v ...any) []any { return v },
}

// pages holds one template set per page, each the base layout with the
// page's "content"; login and report are whole documents of their own.
var pages = parsePages()

func parsePages() map[string]*template.Template {
	base := template.Must(template.New("base.html").Funcs(funcs).ParseFS(static, "base.html"))
	out := map[string]*template.Template{}
	for _, name := range []string{"overview", "series", "search", "message"} {
		t := template.Must(base.Clone())
		out[name] = template.Must(t.ParseFS(static, name+".html"))
	}
	out["login"] = template.Must(template.New("login.html").Funcs(funcs).ParseFS(static, "login.html"))
	out["report"] = template.Must(template.Must(base.Clone()).ParseFS(static, "report.html"))
	return out
}

// page is the data of a page in the base layout.
type page struct {
	// Title is the document title.
	Title string
	// Live is the page's server-sent-events URL, empty for a static page.
	Live string
	// SignOut shows the sign-out button.
	SignOut bool
	// Store and SKU prefill the search form.
	Store, SKU string
	// Data is the page's own data.
	Data any
}

// render executes template tmpl of page set name into w, through a buffer
// so that a template error never sends half a page.
func render(w io.Writer, name, tmpl string, data any) error {
	var b bytes.Buffer
	if err := pages[name].ExecuteTemplate(&b, tmpl, data); err != nil {
		return fmt.Errorf("console: rendering %s: %w", name, err)
	}
	_, err := w.Write(b.Bytes())
	return err
}
