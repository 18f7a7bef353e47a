package pipeline

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
	"unicode/utf8"
)

var errNull = errors.New("null")

// scanner reads JSON from b, unescaping strings into scratch.
type scanner struct {
	b       []byte
	i       int
	scratch []byte
	ascii   bool // the last string read was plain ASCII without escapes
}

func (s *scanner) ws() {
	for s.i < len(s.b) && s.b[s.i] <= ' ' {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) consume(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) literal(lit string) bool {
	if bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		s.i += len(lit)
		return true
	}
	return false
}

func (s *scanner) null() bool { return s.literal("null") }

// kindErr classifies an unexpected value: a syntax error when it is not
// valid JSON, a type error when it is valid JSON of another type.
func (s *scanner) kindErr() error {
	if s.i >= len(s.b) {
		return errSyntax
	}
	if s.null() {
		return errNull
	}
	if err := s.skip(0); err != nil {
		return errSyntax
	}
	return errType
}

func (s *scanner) boolean() (bool, error) {
	if s.literal("true") {
		return true, nil
	}
	if s.literal("false") {
		return false, nil
	}
	return false, s.kindErr()
}

// str reads a JSON string. Without escapes it returns a slice of the input;
// with escapes it unescapes onto s.scratch and returns that part of it.
func (s *scanner) str() ([]byte, error) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, s.kindErr()
	}
	start := s.i + 1
	j := start
	// Skip eight plain ASCII bytes at a time, then look at bytes one by
	// one from the first word holding anything special.
	for ; j+8 <= len(s.b); j += 8 {
		if special(binary.LittleEndian.Uint64(s.b[j:])) {
			break
		}
	}
	s.ascii = true
	for ; j < len(s.b); j++ {
		c := s.b[j]
		switch {
		case c == '"':
			s.i = j + 1
			return s.b[start:j], nil
		case c == '\\':
			s.ascii = false
			return s.unescape(start)
		case c < 0x20:
			return nil, errSyntax
		case c >= 0x80:
			s.ascii = false
		}
	}
	return nil, errSyntax
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// special reports whether any byte of w is a quote, a backslash, a control
// character or not ASCII.
func special(w uint64) bool {
	q := w ^ (lsb * '"')
	bs := w ^ (lsb * '\\')
	return ((q-lsb)&^q|(bs-lsb)&^bs|(w-lsb*0x20)&^w|w)&msb != 0
}

func (s *scanner) unescape(start int) ([]byte, error) {
	out := len(s.scratch)
	buf := s.scratch
	for j := start; j < len(s.b); {
		c := s.b[j]
		switch {
		case c == '"':
			s.i = j + 1
			s.scratch = buf
			return buf[out:], nil
		case c < 0x20:
			return nil, errSyntax
		case c != '\\':
			buf = append(buf, c)
			j++
			continue
		}
		if j+1 >= len(s.b) {
			return nil, errSyntax
		}
		e := s.b[j+1]
		j += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, n := hex4(s.b[j:])
			if n == 0 {
				return nil, errSyntax
			}
			j += n
			if r >= 0xD800 && r < 0xDC00 {
				// A high surrogate pairs with a following \uDC00-\uDFFF.
				if r2, n2 := hex4(s.b[min(j+2, len(s.b)):]); j+1 < len(s.b) && s.b[j] == '\\' && s.b[j+1] == 'u' &&
					n2 > 0 && r2 >= 0xDC00 && r2 < 0xE000 {
					r = (r-0xD800)<<10 + (r2 - 0xDC00) + 0x10000
					j += 2 + n2
				} else {
					r = utf8.RuneError
				}
			} else if r >= 0xDC00 && r < 0xE000 {
				r = utf8.RuneError
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return nil, errSyntax
		}
	}
	return nil, errSyntax
}

func hex4(b []byte) (rune, int) {
	if len(b) < 4 {
		return 0, 0
	}
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, 0
		}
	}
	return r, 4
}

// numberEnd returns the end of a JSON number starting at s.i, or -1.
func (s *scanner) numberEnd() int {
	j := s.i
	if j < len(s.b) && s.b[j] == '-' {
		j++
	}
	switch {
	case j < len(s.b) && s.b[j] == '0':
		j++
	case j < len(s.b) && s.b[j] >= '1' && s.b[j] <= '9':
		for j < len(s.b) && s.b[j] >= '0' && s.b[j] <= '9' {
			j++
		}
	default:
		return -1
	}
	if j < len(s.b) && s.b[j] == '.' {
		j++
		k := j
		for j < len(s.b) && s.b[j] >= '0' && s.b[j] <= '9' {
			j++
		}
		if j == k {
			return -1
		}
	}
	if j < len(s.b) && (s.b[j] == 'e' || s.b[j] == 'E') {
		j++
		if j < len(s.b) && (s.b[j] == '+' || s.b[j] == '-') {
			j++
		}
		k := j
		for j < len(s.b) && s.b[j] >= '0' && s.b[j] <= '9' {
			j++
		}
		if j == k {
			return -1
		}
	}
	return j
}

// number reads a JSON number. Numbers too large for a float64 become ±Inf,
// which validation rejects.
func (s *scanner) number() (float64, error) {
	end := s.numberEnd()
	if end < 0 {
		return 0, s.kindErr()
	}
	lit := s.b[s.i:end]
	s.i = end
	if v, ok := smallInt(lit); ok {
		return v, nil
	}
	v, err := strconv.ParseFloat(string(lit), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, errSyntax
	}
	return v, nil
}

// smallInt parses short unsigned integer literals, the common case for
// quantities, without strconv.
func smallInt(b []byte) (float64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return float64(v), true
}

// skip skips any JSON value.
func (s *scanner) skip(depth int) error {
	if depth > 10000 {
		return errSyntax
	}
	if s.i >= len(s.b) {
		return errSyntax
	}
	switch c := s.b[s.i]; {
	case c == '"':
		mark := len(s.scratch)
		_, err := s.str()
		s.scratch = s.scratch[:mark]
		return err
	case c == '{' || c == '[':
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		s.i++
		s.ws()
		if s.consume(closer) {
			return nil
		}
		for {
			s.ws()
			if c == '{' {
				mark := len(s.scratch)
				_, err := s.str()
				s.scratch = s.scratch[:mark]
				if err != nil {
					return errSyntax
				}
				s.ws()
				if !s.consume(':') {
					return errSyntax
				}
				s.ws()
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			s.ws()
			if s.consume(',') {
				continue
			}
			if s.consume(closer) {
				return nil
			}
			return errSyntax
		}
	case c == 't':
		if s.literal("true") {
			return nil
		}
	case c == 'f':
		if s.literal("false") {
			return nil
		}
	case c == 'n':
		if s.null() {
			return nil
		}
	default:
		if end := s.numberEnd(); end > 0 {
			s.i = end
			return nil
		}
	}
	return errSyntax
}
