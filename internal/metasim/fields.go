package metasim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// fsel is one entry of a Graph `fields` expression, e.g.
// `mentioned_media.media_id(123){caption,username}` or `from{id,username}`.
type fsel struct {
	name string
	mods []fmod
	sub  []*fsel // nil when the entry has no braces
	raw  string  // the text inside the braces, as sent
}

type fmod struct{ name, arg string }

func (f *fsel) mod(name string) (string, bool) {
	for _, m := range f.mods {
		if m.name == name {
			return m.arg, true
		}
	}
	return "", false
}

// syntaxError mirrors Meta's wording for a malformed field expression.
type syntaxError struct {
	what string
	pos  int
	expr string
}

func (e *syntaxError) Error() string {
	return fmt.Sprintf("Syntax error %q at character %d: %s", e.what, e.pos, e.expr)
}

type fieldParser struct {
	s   string
	pos int
}

// parseFields parses a comma-separated field expression. An empty
// expression yields nil.
func parseFields(s string) ([]*fsel, error) {
	p := &fieldParser{s: s}
	list, err := p.list(false)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.pos < len(p.s) {
		return nil, p.errf("Expected end of string instead of \"%c\".", p.s[p.pos])
	}
	return list, nil
}

func (p *fieldParser) errf(format string, args ...any) error {
	return &syntaxError{what: fmt.Sprintf(format, args...), pos: p.pos, expr: p.s}
}

func (p *fieldParser) space() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t' || p.s[p.pos] == '\n' || p.s[p.pos] == '\r') {
		p.pos++
	}
}

func isNameByte(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

func (p *fieldParser) name() (string, error) {
	p.space()
	start := p.pos
	for p.pos < len(p.s) && isNameByte(p.s[p.pos]) {
		p.pos++
	}
	if p.pos == start {
		if p.pos >= len(p.s) {
			return "", p.errf("Unexpected end of string.")
		}
		return "", p.errf("Expected name instead of \"%c\".", p.s[p.pos])
	}
	return p.s[start:p.pos], nil
}

// list parses entries until the end of input or, when nested, a '}'.
func (p *fieldParser) list(nested bool) ([]*fsel, error) {
	var out []*fsel
	for {
		p.space()
		if p.pos >= len(p.s) {
			if nested {
				return nil, p.errf("Expected \"}\" instead of end of string.")
			}
			return out, nil
		}
		c := p.s[p.pos]
		if c == ',' { // tolerate empty entries, as Meta does
			p.pos++
			continue
		}
		if c == '}' {
			if nested {
				return out, nil
			}
			return nil, p.errf("Expected end of string instead of \"}\".")
		}
		f, err := p.entry()
		if err != nil {
			return nil, err
		}
		out = append(out, f)
		p.space()
		if p.pos < len(p.s) && p.s[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.pos < len(p.s) && p.s[p.pos] != '}' {
			return nil, p.errf("Expected \",\" instead of \"%c\".", p.s[p.pos])
		}
	}
}

func (p *fieldParser) entry() (*fsel, error) {
	n, err := p.name()
	if err != nil {
		return nil, err
	}
	f := &fsel{name: n}
	for {
		p.space()
		if p.pos < len(p.s) && p.s[p.pos] == '.' {
			p.pos++
			mn, err := p.name()
			if err != nil {
				return nil, err
			}
			p.space()
			if p.pos >= len(p.s) || p.s[p.pos] != '(' {
				return nil, p.errf("Expected \"(\" after modifier %s.", mn)
			}
			p.pos++
			end := strings.IndexByte(p.s[p.pos:], ')')
			if end < 0 {
				return nil, p.errf("Expected \")\" instead of end of string.")
			}
			f.mods = append(f.mods, fmod{name: mn, arg: strings.TrimSpace(p.s[p.pos : p.pos+end])})
			p.pos += end + 1
			continue
		}
		break
	}
	if p.pos < len(p.s) && p.s[p.pos] == '{' {
		p.pos++
		start := p.pos
		sub, err := p.list(true)
		if err != nil {
			return nil, err
		}
		f.raw = strings.TrimSpace(p.s[start:p.pos])
		p.pos++ // '}'
		if sub == nil {
			sub = []*fsel{}
		}
		f.sub = sub
	}
	return f, nil
}

// omap is a JSON object that keeps its keys in insertion order, so responses
// list fields in the order they were asked for, as Meta does.
type omap []kv

type kv struct {
	k string
	v any
}

func (m omap) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range m {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := marshal(e.k)
		b.Write(k)
		b.WriteByte(':')
		v, err := marshal(e.v)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// getter answers one field of an object: ok=false means the field does not
// exist on this node type.
type getter func(f *fsel) (v any, ok bool, err error)

// render builds an object from a field selection. With no selection the
// node type's defaults are used. "id" is always included for node types
// that have one, as Meta does.
func render(typ string, sel []*fsel, defaults string, get getter) (omap, error) {
	if sel == nil {
		var err error
		sel, err = parseFields(defaults)
		if err != nil {
			return nil, err
		}
	}
	out := make(omap, 0, len(sel)+1)
	seen := map[string]bool{}
	for _, f := range sel {
		if seen[f.name] {
			continue
		}
		seen[f.name] = true
		v, ok, err := get(f)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, &graphError{status: 400, code: 100, typ: "OAuthException",
				msg: fmt.Sprintf("(#100) Tried accessing nonexisting field (%s) on node type (%s)", f.name, typ)}
		}
		if v == omitField {
			continue
		}
		out = append(out, kv{f.name, v})
	}
	if !seen["id"] {
		if v, ok, _ := get(&fsel{name: "id"}); ok && v != omitField {
			out = append(out, kv{"id", v})
		}
	}
	return out, nil
}

// omitField is returned by a getter for a field that exists but has no value
// on this object (Meta leaves such fields out).
var omitField = &struct{ omitted bool }{true}

// marshal is json.Marshal without HTML escaping, so URLs keep their '&'.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}
