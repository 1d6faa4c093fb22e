package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Edges an Action can be on.
const (
	EdgeComments  = "comments"
	EdgeMentions  = "mentions"
	EdgeReactions = "reactions"
)

// Action is one action a webhook reported (mirrors store.EvidenceAction field
// by field; the caller converts).
type Action struct {
	Target   string    // IG media id (comments, mentions), Page post id (feed comments, reactions)
	Edge     string    // "comments", "mentions", "reactions"
	ActionID string    // comment id; for a reaction, the reacting user's id; for a mention, comment id or media id
	Username string    // IG username (comments) or Facebook display name (feed from.name)
	UserID   string    // from.id
	Text     string    // comment text / message
	Time     time.Time // the event's time (value created_time if present, else entry time); zero if unknown
	Deleted  bool      // verb "remove"
}

// ErrMalformed wraps every error Parse returns.
var ErrMalformed = errors.New("malformed webhook payload")

// Parse turns a webhook delivery body into the actions it reports. It accepts
// both envelope shapes Meta sends:
//
//   - Facebook Login (Instagram and Page objects):
//     {"object":"page","entry":[{"id":..,"time":..,"changes":[{"field":..,"value":{..}}]}]}
//   - Business Login for Instagram, where an entry carries "field" and "value"
//     itself: {"object":"instagram","entry":[{"id":..,"time":..,"field":..,"value":{..}}]}
//
// and, as Meta's documentation prints them, a JSON array of such envelopes.
//
// It turns Instagram "comments" and "mentions" and Page "feed" comments and
// reactions into actions; every other field, feed item and messaging event is
// counted in ignored, as is a change lacking the ids an action needs (an
// Instagram comment on an album carries no media id). Times are unix seconds
// (or milliseconds, told apart by size), RFC 3339 or Meta's
// 2006-01-02T15:04:05-0700, and come out in UTC.
//
// A NUL in a string comes out as U+FFFD (a store cannot keep it). Errors
// never quote the payload.
func Parse(body []byte) (actions []Action, ignored int, err error) {
	var envs []envelope
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		err = json.Unmarshal(body, &envs)
	} else {
		var env envelope
		err = json.Unmarshal(body, &env)
		envs = []envelope{env}
	}
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	for _, env := range envs {
		for i, e := range env.Entry {
			ignored += len(e.Messaging)
			changes := e.Changes
			if e.Field != "" {
				changes = append(changes[:len(changes):len(changes)], change{Field: e.Field, Value: e.Value})
			}
			for j, c := range changes {
				a, ok, err := convert(env.Object, c, e.Time.t)
				if err != nil {
					return nil, 0, fmt.Errorf("%w: entry %d, change %d (%s): %w", ErrMalformed, i, j, c.Field, err)
				}
				if !ok {
					ignored++
					continue
				}
				actions = append(actions, a)
			}
		}
	}
	return actions, ignored, nil
}

type envelope struct {
	Object string  `json:"object"`
	Entry  []entry `json:"entry"`
}

type entry struct {
	ID        flexID            `json:"id"`
	Time      flexTime          `json:"time"`
	Changes   []change          `json:"changes"`
	Field     string            `json:"field"` // Business Login for Instagram: the change is the entry
	Value     json.RawMessage   `json:"value"`
	Messaging []json.RawMessage `json:"messaging"` // Messenger/Instagram messaging: not evidence
}

type change struct {
	Field string          `json:"field"`
	Value json.RawMessage `json:"value"`
}

type igComment struct {
	ID   flexID `json:"id"`
	Text string `json:"text"`
	From struct {
		ID       flexID `json:"id"`
		Username string `json:"username"`
	} `json:"from"`
	Media struct {
		ID flexID `json:"id"`
	} `json:"media"`
	CreatedTime flexTime `json:"created_time"`
}

type igMention struct {
	MediaID   flexID `json:"media_id"`
	CommentID flexID `json:"comment_id"`
}

type feedChange struct {
	Item      string `json:"item"`
	Verb      string `json:"verb"`
	PostID    flexID `json:"post_id"`
	CommentID flexID `json:"comment_id"`
	Message   string `json:"message"`
	From      struct {
		ID   flexID `json:"id"`
		Name string `json:"name"`
	} `json:"from"`
	CreatedTime flexTime `json:"created_time"`
}

// convert turns one change into an action. ok is false for a change that is
// not evidence, or lacks the ids an action needs.
func convert(object string, c change, entryTime time.Time) (a Action, ok bool, err error) {
	if len(c.Value) == 0 || string(c.Value) == "null" {
		return Action{}, false, nil
	}
	when := func(t flexTime) time.Time {
		if !t.t.IsZero() {
			return t.t
		}
		return entryTime
	}
	switch {
	case object == "instagram" && c.Field == "comments":
		var v igComment
		if err := json.Unmarshal(c.Value, &v); err != nil {
			return Action{}, false, err
		}
		a = Action{
			Target:   string(v.Media.ID),
			Edge:     EdgeComments,
			ActionID: string(v.ID),
			Username: v.From.Username,
			UserID:   string(v.From.ID),
			Text:     v.Text,
			Time:     when(v.CreatedTime),
		}
	case object == "instagram" && c.Field == "mentions":
		var v igMention
		if err := json.Unmarshal(c.Value, &v); err != nil {
			return Action{}, false, err
		}
		// A mention webhook does not name its author: the Graph API's
		// mentioned_comment / mentioned_media tell who, when asked.
		id := string(v.CommentID)
		if id == "" {
			id = string(v.MediaID) // @mention in a caption
		}
		a = Action{Target: string(v.MediaID), Edge: EdgeMentions, ActionID: id, Time: entryTime}
	case object == "page" && c.Field == "feed":
		var v feedChange
		if err := json.Unmarshal(c.Value, &v); err != nil {
			return Action{}, false, err
		}
		a = Action{
			Target:   string(v.PostID),
			Username: v.From.Name,
			UserID:   string(v.From.ID),
			Time:     when(v.CreatedTime),
			Deleted:  v.Verb == "remove",
		}
		switch v.Item {
		case "comment":
			a.Edge, a.ActionID, a.Text = EdgeComments, string(v.CommentID), v.Message
		case "reaction":
			a.Edge, a.ActionID = EdgeReactions, string(v.From.ID)
		default: // post, status, photo, video, share, like, ...
			return Action{}, false, nil
		}
	default:
		return Action{}, false, nil
	}
	// PostgreSQL cannot store a NUL in text: one in a comment would fail the
	// whole delivery, and every redelivery of it.
	for _, s := range []*string{&a.Target, &a.ActionID, &a.Username, &a.UserID, &a.Text} {
		*s = strings.ReplaceAll(*s, "\x00", "\uFFFD")
	}
	if a.Target == "" || a.ActionID == "" {
		return Action{}, false, nil
	}
	return a, true, nil
}

// flexID is an id Meta sends as a JSON string or, in older payloads, a number.
type flexID string

func (id *flexID) UnmarshalJSON(b []byte) error {
	switch {
	case string(b) == "null":
		*id = ""
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*id = flexID(s)
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return errors.New("id is neither a string nor a number")
		}
		*id = flexID(n.String())
	}
	return nil
}

// flexTime is a time Meta sends as unix seconds (a number or a numeric
// string) or as an ISO 8601 string; zero when absent or null.
type flexTime struct{ t time.Time }

// A unix time this large is in milliseconds: in seconds it would be after the
// year 5000.
const millisAbove = 100_000_000_000

var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05-0700", "2006-01-02T15:04:05Z0700"}

func (ft *flexTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		ft.t = time.Time{}
		return nil
	}
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "" {
			ft.t = time.Time{}
			return nil
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		switch {
		case n < 0:
			return errors.New("negative time")
		case n > millisAbove:
			ft.t = time.UnixMilli(n).UTC()
		default:
			ft.t = time.Unix(n, 0).UTC()
		}
		return nil
	}
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			ft.t = t.UTC()
			return nil
		}
	}
	return errors.New("time is neither unix seconds nor ISO 8601")
}
