// Package claim defines what an end user claims to have done and how a claim
// is read from JSON Lines. It is pure code: no I/O, no Temporal.
package claim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Kind is the engagement an end user claims.
type Kind string

// The kinds the platform knows. Follows, likes and shares by a given person
// cannot be proven through any Meta API; they get the verdict unverifiable.
const (
	IGComment  Kind = "ig_comment"  // target: Instagram media id
	IGMention  Kind = "ig_mention"  // target: id of the user's media whose caption mentions the brand
	IGTag      Kind = "ig_tag"      // target: the brand's Instagram user id
	FBComment  Kind = "fb_comment"  // target: Facebook Page post id
	FBReaction Kind = "fb_reaction" // target: Facebook Page post id
	IGFollow   Kind = "ig_follow"
	IGLike     Kind = "ig_like"
	FBShare    Kind = "fb_share"
)

// Kinds lists every known kind, in a stable order.
var Kinds = []Kind{IGComment, IGMention, IGTag, FBComment, FBReaction, IGFollow, IGLike, FBShare}

// Known reports whether k is one of Kinds.
func (k Kind) Known() bool {
	for _, known := range Kinds {
		if k == known {
			return true
		}
	}
	return false
}

// Verifiable reports whether some Graph API read can prove a claim of this kind.
func (k Kind) Verifiable() bool {
	switch k {
	case IGComment, IGMention, IGTag, FBComment, FBReaction:
		return true
	}
	return false
}

// HasText reports whether the proof of this kind carries text (a comment or a
// caption) in which a claim code can be checked.
func (k Kind) HasText() bool {
	switch k {
	case IGComment, IGMention, IGTag, FBComment:
		return true
	}
	return false
}

// Claim is one line of `starter submit` input and one object of the platform API.
type Claim struct {
	Tenant string     `json:"tenant"`
	Key    string     `json:"key"`
	User   string     `json:"user"`
	Handle string     `json:"handle,omitempty"`
	Kind   Kind       `json:"kind"`
	Target string     `json:"target"`
	Code   string     `json:"code,omitempty"`
	Since  *time.Time `json:"since,omitempty"`
}

// Limits on field sizes: generous for real data, small enough that a hostile
// line cannot bloat the store.
const (
	MaxIDLen     = 128
	MaxHandleLen = 100
	MaxCodeLen   = 32
	MaxLineBytes = 4096
)

var (
	idPattern     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@/-]*$`)
	targetPattern = regexp.MustCompile(`^[0-9]+(_[0-9]+)?$`) // Graph ids: digits, Page posts as page_post
	codePattern   = regexp.MustCompile(`^[A-Za-z0-9-]+$`)
)

// Validate reports the first thing wrong with c, phrased for the person who sent it.
func (c Claim) Validate() error {
	if err := checkID("tenant", c.Tenant); err != nil {
		return err
	}
	if err := checkID("key", c.Key); err != nil {
		return err
	}
	if err := checkID("user", c.User); err != nil {
		return err
	}
	if c.Kind == "" {
		return errors.New(`"kind" is required`)
	}
	if !c.Kind.Known() {
		return fmt.Errorf(`unknown kind %q (known: %s)`, c.Kind, kindList())
	}
	if c.Target == "" {
		return errors.New(`"target" is required`)
	}
	if len(c.Target) > MaxIDLen || !targetPattern.MatchString(c.Target) {
		return fmt.Errorf(`"target" %q is not a Meta object id (digits, or page_post for Page posts)`, clip(c.Target))
	}
	if c.Kind.Verifiable() && strings.TrimSpace(c.Handle) == "" {
		return fmt.Errorf(`"handle" is required for kind %s`, c.Kind)
	}
	if len(c.Handle) > MaxHandleLen {
		return fmt.Errorf(`"handle" is longer than %d bytes`, MaxHandleLen)
	}
	if !utf8.ValidString(c.Handle) {
		return errors.New(`"handle" is not valid UTF-8`)
	}
	// No username or display name has them, and PostgreSQL cannot store a NUL:
	// one such claim would fail its whole batch.
	if strings.ContainsFunc(c.Handle, unicode.IsControl) {
		return errors.New(`"handle" has control characters`)
	}
	if c.Code != "" {
		if len(c.Code) > MaxCodeLen || !codePattern.MatchString(c.Code) {
			return fmt.Errorf(`"code" must be 1-%d letters, digits or dashes`, MaxCodeLen)
		}
		if !c.Kind.HasText() {
			return fmt.Errorf(`"code" cannot be checked for kind %s: it has no text`, c.Kind)
		}
	}
	return nil
}

func checkID(field, v string) error {
	if v == "" {
		return fmt.Errorf("%q is required", field)
	}
	if len(v) > MaxIDLen {
		return fmt.Errorf("%q is longer than %d bytes", field, MaxIDLen)
	}
	if !idPattern.MatchString(v) {
		return fmt.Errorf("%q %q has characters other than letters, digits and . _ : @ / -", field, clip(v))
	}
	return nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func kindList() string {
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// Parse reads one JSON object. Unknown fields, trailing data and invalid
// values are refused with a reason.
func Parse(line []byte) (Claim, error) {
	var c Claim
	if len(line) > MaxLineBytes {
		return c, fmt.Errorf("line is longer than %d bytes", MaxLineBytes)
	}
	if !utf8.Valid(line) {
		return c, errors.New("line is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Claim{}, fmt.Errorf("not a claim object: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); err != io.EOF { // only white space may follow, not even a stray } or ]
		return Claim{}, errors.New("trailing data after the claim object")
	}
	c.Handle = strings.TrimSpace(c.Handle)
	if err := c.Validate(); err != nil {
		return Claim{}, err
	}
	return c, nil
}

// LineError is a refused input line.
type LineError struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

func (e LineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Reason) }

// Line is a parsed input line and its 1-based number.
type Line struct {
	Line  int
	Claim Claim
}

// ReadLines parses JSON Lines from r. Blank lines are skipped; every malformed
// line is returned as a LineError and does not stop the rest. Only a failure
// to read r is an error.
func ReadLines(r io.Reader) (claims []Line, refused []LineError, err error) {
	br := bufio.NewReaderSize(r, 64*1024)
	for n := 1; ; n++ {
		line, tooLong, rerr := readLine(br)
		if rerr != nil && rerr != io.EOF {
			return claims, refused, fmt.Errorf("read claims at line %d: %w", n, rerr)
		}
		line = bytes.TrimSpace(line)
		switch {
		case tooLong:
			refused = append(refused, LineError{Line: n, Reason: fmt.Sprintf("line is longer than %d bytes", MaxLineBytes)})
		case len(line) > 0:
			c, perr := Parse(line)
			if perr != nil {
				refused = append(refused, LineError{Line: n, Reason: perr.Error()})
			} else {
				claims = append(claims, Line{Line: n, Claim: c})
			}
		}
		if rerr == io.EOF {
			return claims, refused, nil
		}
	}
}

// readLine reads up to the next newline. It drops leading white space and
// keeps at most MaxLineBytes+1 bytes of the rest, so a huge line cannot
// exhaust memory; tooLong tells a line whose content, without the white
// space around it, is over MaxLineBytes (none of it is lost: it is refused).
func readLine(br *bufio.Reader) (line []byte, tooLong bool, err error) {
	const space = " \t\r\n\v\f"
	overflow := false // content past the kept bytes
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line) == 0 {
			chunk = bytes.TrimLeft(chunk, space)
		}
		keep := min(len(chunk), MaxLineBytes+1-len(line))
		line = append(line, chunk[:keep]...)
		if len(bytes.Trim(chunk[keep:], space)) > 0 {
			overflow = true
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return line, overflow || len(bytes.TrimSpace(line)) > MaxLineBytes, err
	}
}
