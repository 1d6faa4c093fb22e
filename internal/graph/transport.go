package graph

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// maxBody bounds what the client reads of one answer: a page of 50 comments
// is a few tens of KiB, and a proxy or a broken answer must not fill memory.
const maxBody = 16 << 20

// errBodyTooLarge: an answer longer than maxBody.
var errBodyTooLarge = errors.New("response body over 16 MiB")

// statusError is an HTTP error status whose body is not a Graph API error
// object: a proxy's 502 page, a bare 503 "{}". It must never read as an
// answer (an empty page would prove a comment absent).
type statusError struct{ code int }

func (e *statusError) Error() string {
	return fmt.Sprintf("HTTP %d without a Graph API error", e.code)
}

// checkedTransport is the client's HTTP transport: it refuses error statuses
// that carry no Graph error object, and bounds every body to maxBody.
type checkedTransport struct{ next http.RoundTripper }

func (t checkedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	next := t.next
	if next == nil {
		next = http.DefaultTransport
	}
	resp, err := next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &boundedBody{r: io.LimitReader(resp.Body, maxBody+1), c: resp.Body}
	if resp.StatusCode < 400 {
		return resp, nil
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if !hasGraphError(body) {
		return nil, &statusError{code: resp.StatusCode}
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// hasGraphError reports whether body is {"error": {...}} with a numeric
// code, the shape the Graph API (and huandu's decoder) uses for errors.
func hasGraphError(body []byte) bool {
	var v struct {
		Error *struct {
			Code json.Number `json:"code"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if dec.Decode(&v) != nil || v.Error == nil {
		return false
	}
	_, err := v.Error.Code.Int64()
	return err == nil
}

// boundedBody fails a read past maxBody rather than truncating the answer
// into something that parses.
type boundedBody struct {
	r    io.Reader
	c    io.Closer
	read int64
}

func (b *boundedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read += int64(n)
	if b.read > maxBody {
		return n, errBodyTooLarge
	}
	return n, err
}

func (b *boundedBody) Close() error { return b.c.Close() }
