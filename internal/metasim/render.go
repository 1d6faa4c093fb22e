package metasim

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// rctx carries what rendering needs from the request.
type rctx struct {
	s          *Sim
	q          url.Values
	tok        *tokenRec
	now        time.Time
	version    string
	base       string // scheme://host/vNN.N
	token      string // the access token when it came in the query string
	proof      string
	dateLayout string
	unixDates  bool
}

const metaTime = "2006-01-02T15:04:05-0700"

func (c *rctx) ts(t time.Time) any {
	if c.unixDates {
		return t.Unix()
	}
	layout := metaTime
	if c.dateLayout != "" {
		layout = c.dateLayout
	}
	return t.UTC().Format(layout)
}

const (
	defaultLimit = 25
	maxLimit     = 50
)

// listSpec describes one page of an edge.
type listSpec struct {
	path      string // e.g. "/17895.../comments", for the next/previous URLs
	limit     string // as asked ("" for the default)
	after     string
	before    string
	fieldsRaw string // the fields expression to carry into next URLs
	hasFields bool
}

func encodeCursor(ts int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(ts, 10) + ":" + id))
}

func decodeCursor(s string) (int64, string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, "", false
	}
	ts, id, ok := strings.Cut(string(b), ":")
	if !ok {
		return 0, "", false
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return 0, "", false
	}
	return n, id, true
}

// pageOf renders one cursor page of items (sorted newest first) the way Meta
// does: {"data":[...],"paging":{"cursors":{"before","after"},"next","previous"}},
// next only when more items follow.
func pageOf[T keyed](c *rctx, items []T, ls listSpec, item func(T) (omap, error)) (omap, error) {
	limit := defaultLimit
	if n, err := strconv.Atoi(ls.limit); err == nil && n > 0 {
		limit = min(n, maxLimit)
	}
	start, end := 0, min(len(items), limit)
	switch {
	case ls.after != "":
		cts, cid, ok := decodeCursor(ls.after)
		if !ok {
			return nil, errParam("(#100) The after cursor is not valid")
		}
		start = sort.Search(len(items), func(i int) bool {
			t, id := items[i].key()
			return newerThan(cts, cid, t, id)
		})
		end = min(len(items), start+limit)
	case ls.before != "":
		cts, cid, ok := decodeCursor(ls.before)
		if !ok {
			return nil, errParam("(#100) The before cursor is not valid")
		}
		end = sort.Search(len(items), func(i int) bool {
			t, id := items[i].key()
			return !newerThan(t, id, cts, cid)
		})
		start = max(0, end-limit)
	}
	data := make([]omap, 0, end-start)
	for _, it := range items[start:end] {
		o, err := item(it)
		if err != nil {
			return nil, err
		}
		data = append(data, o)
	}
	out := omap{{"data", data}}
	if len(data) == 0 {
		return out, nil
	}
	fts, fid := items[start].key()
	lts, lid := items[end-1].key()
	first, last := encodeCursor(fts, fid), encodeCursor(lts, lid)
	paging := omap{{"cursors", omap{{"before", first}, {"after", last}}}}
	if end < len(items) {
		paging = append(paging, kv{"next", c.pageURL(ls, limit, "after", last)})
	}
	if start > 0 {
		paging = append(paging, kv{"previous", c.pageURL(ls, limit, "before", first)})
	}
	return append(out, kv{"paging", paging}), nil
}

// pageURL builds an absolute paging URL as Meta does: same path, fields,
// limit, access_token and appsecret_proof, plus the cursor.
func (c *rctx) pageURL(ls listSpec, limit int, cursorName, cursor string) string {
	v := url.Values{}
	if c.token != "" {
		v.Set("access_token", c.token)
	}
	if c.proof != "" {
		v.Set("appsecret_proof", c.proof)
	}
	if ls.hasFields {
		v.Set("fields", ls.fieldsRaw)
	}
	if df := c.q.Get("date_format"); df != "" {
		v.Set("date_format", df)
	}
	v.Set("limit", strconv.Itoa(limit))
	v.Set(cursorName, cursor)
	return c.base + ls.path + "?" + v.Encode()
}

// edge answers GET /{id}/{edge}.
func (c *rctx) edge(obj any, path, name string, sel []*fsel) (any, error) {
	ls := listSpec{path: path, limit: c.q.Get("limit"), after: c.q.Get("after"), before: c.q.Get("before")}
	if _, has := c.q["fields"]; has {
		ls.hasFields, ls.fieldsRaw = true, c.q.Get("fields")
	}
	if out, ok, err := c.list(obj, name, sel, ls); ok {
		return out, err
	}
	return nil, &graphError{status: 400, code: 100, typ: "OAuthException",
		msg: fmt.Sprintf("(#100) Tried accessing nonexisting field (%s) on node type (%s)", name, nodeType(obj))}
}

// list renders an edge of obj; ok=false when obj has no such edge.
func (c *rctx) list(obj any, name string, sel []*fsel, ls listSpec) (omap, bool, error) {
	switch o := obj.(type) {
	case *igAccountNode:
		switch name {
		case "tags":
			out, err := pageOf(c, o.b.tags, ls, func(m *igMedia) (omap, error) { return c.media(m, sel) })
			return out, true, err
		case "media":
			out, err := pageOf(c, o.b.ownMedia, ls, func(m *igMedia) (omap, error) { return c.media(m, sel) })
			return out, true, err
		}
	case *igMedia:
		if name == "comments" && o.brand != nil {
			out, err := pageOf(c, o.comments, ls, func(cm *igComment) (omap, error) { return c.igComment(cm, sel) })
			return out, true, err
		}
	case *pageNode:
		switch name {
		case "posts", "feed", "published_posts":
			out, err := pageOf(c, o.b.posts, ls, func(p *post) (omap, error) { return c.post(p, sel) })
			return out, true, err
		}
	case *post:
		switch name {
		case "comments":
			out, err := pageOf(c, o.comments, ls, func(cm *fbComment) (omap, error) { return c.fbComment(cm, sel) })
			return out, true, err
		case "reactions":
			out, err := pageOf(c, o.reacts, ls, func(r *reaction) (omap, error) { return c.reaction(r, sel) })
			return out, true, err
		}
	}
	return nil, false, nil
}

// nested renders an edge asked for as a field, e.g. comments.limit(10){text}.
func (c *rctx) nested(obj any, id string, f *fsel) (any, bool, error) {
	ls := listSpec{path: "/" + id + "/" + f.name}
	ls.limit, _ = f.mod("limit")
	ls.after, _ = f.mod("after")
	ls.before, _ = f.mod("before")
	if f.sub != nil {
		ls.hasFields, ls.fieldsRaw = true, f.raw
	}
	out, ok, err := c.list(obj, f.name, f.sub, ls)
	return out, ok, err
}

func nodeType(obj any) string {
	switch obj.(type) {
	case *igAccountNode:
		return "IGUser"
	case *pageNode:
		return "Page"
	case *igMedia:
		return "IGMedia"
	case *igComment:
		return "IGComment"
	case *post:
		return "PagePost"
	case *fbComment:
		return "Comment"
	case *sysUserNode:
		return "User"
	}
	return "Node"
}

// node answers GET /{id}.
func (c *rctx) node(obj any, sel []*fsel) (omap, error) {
	switch o := obj.(type) {
	case *igAccountNode:
		return c.igAccount(o, sel)
	case *pageNode:
		return c.page(o, sel)
	case *igMedia:
		return c.media(o, sel)
	case *igComment:
		return c.igComment(o, sel)
	case *post:
		return c.post(o, sel)
	case *fbComment:
		return c.fbComment(o, sel)
	case *sysUserNode:
		return render("User", sel, "name,id", func(f *fsel) (any, bool, error) {
			switch f.name {
			case "id":
				return o.id, true, nil
			case "name":
				return o.name, true, nil
			}
			return nil, false, nil
		})
	}
	return nil, errNotFound("", "get")
}

func idOnly(typ, id string, sel []*fsel) (omap, error) {
	return render(typ, sel, "id", func(f *fsel) (any, bool, error) {
		if f.name == "id" {
			return id, true, nil
		}
		return nil, false, nil
	})
}

func (c *rctx) igAccount(o *igAccountNode, sel []*fsel) (omap, error) {
	b := o.b
	return render("IGUser", sel, "id", func(f *fsel) (any, bool, error) {
		switch f.name {
		case "id":
			return b.igID, true, nil
		case "username":
			return b.igUsername, true, nil
		case "name":
			return b.name, true, nil
		case "biography":
			return "Official account of " + b.name, true, nil
		case "followers_count":
			return b.followers, true, nil
		case "follows_count":
			return 150 + b.idx, true, nil
		case "media_count":
			return len(b.ownMedia), true, nil
		case "profile_picture_url":
			return "https://scontent.cdninstagram.com/v/t51/" + b.igID + "_profile.jpg", true, nil
		case "website":
			return "https://www." + b.igUsername + ".example", true, nil
		case "mentioned_media":
			mid, ok := f.mod("media_id")
			if !ok || mid == "" {
				return nil, true, errParam("(#100) The parameter media_id is required")
			}
			m, ok := c.s.objects[mid].(*igMedia)
			if !ok || m.owner == nil || !mentions(m.caption, b.igUsername) {
				return nil, true, errNotFound(mid, "get")
			}
			v, err := c.mediaView(m, f.sub, false)
			return v, true, err
		case "mentioned_comment":
			cid, ok := f.mod("comment_id")
			if !ok || cid == "" {
				return nil, true, errParam("(#100) The parameter comment_id is required")
			}
			cm, ok := c.s.objects[cid].(*igComment)
			if !ok || !mentions(cm.text, b.igUsername) {
				return nil, true, errNotFound(cid, "get")
			}
			v, err := c.igCommentView(cm, f.sub, "id")
			return v, true, err
		case "tags", "media":
			return c.nested(o, b.igID, f)
		}
		return nil, false, nil
	})
}

func (c *rctx) media(m *igMedia, sel []*fsel) (omap, error) { return c.mediaView(m, sel, true) }

// mediaView renders an IG media; withEdges allows nested comments.
func (c *rctx) mediaView(m *igMedia, sel []*fsel, withEdges bool) (omap, error) {
	return render("IGMedia", sel, "id", func(f *fsel) (any, bool, error) {
		switch f.name {
		case "id":
			return m.id, true, nil
		case "caption":
			return m.caption, true, nil
		case "username":
			if m.brand != nil {
				return m.brand.igUsername, true, nil
			}
			return m.owner.username, true, nil
		case "timestamp":
			return c.ts(m.ts), true, nil
		case "media_type":
			return m.mediaType, true, nil
		case "media_product_type":
			return "FEED", true, nil
		case "permalink":
			return "https://www.instagram.com/p/" + m.shortcode + "/", true, nil
		case "shortcode":
			return m.shortcode, true, nil
		case "media_url":
			return "https://scontent.cdninstagram.com/v/t51/" + m.id + ".jpg", true, nil
		case "like_count":
			return m.likes, true, nil
		case "comments_count":
			return len(m.comments), true, nil
		case "is_comment_enabled":
			return true, true, nil
		case "owner":
			id := ""
			if m.brand != nil {
				id = m.brand.igID
			} else {
				id = m.owner.igID
			}
			v, err := idOnly("IGUser", id, f.sub)
			return v, true, err
		case "comments":
			if !withEdges || m.brand == nil {
				return nil, false, nil
			}
			return c.nested(m, m.id, f)
		}
		return nil, false, nil
	})
}

func (c *rctx) igComment(cm *igComment, sel []*fsel) (omap, error) {
	return c.igCommentView(cm, sel, "timestamp,text,id")
}

func (c *rctx) igCommentView(cm *igComment, sel []*fsel, defaults string) (omap, error) {
	return render("IGComment", sel, defaults, func(f *fsel) (any, bool, error) {
		switch f.name {
		case "id":
			return cm.id, true, nil
		case "text":
			return cm.text, true, nil
		case "timestamp":
			return c.ts(cm.ts), true, nil
		case "username":
			return cm.by.username, true, nil
		case "from":
			v, err := render("IGCommentFromUser", f.sub, "id,username", func(g *fsel) (any, bool, error) {
				switch g.name {
				case "id":
					return cm.by.igID, true, nil
				case "username":
					return cm.by.username, true, nil
				}
				return nil, false, nil
			})
			return v, true, err
		case "like_count":
			return cm.likes, true, nil
		case "hidden":
			return false, true, nil
		case "media":
			v, err := idOnly("IGMedia", cm.media.id, f.sub)
			return v, true, err
		case "parent_id":
			return omitField, true, nil
		}
		return nil, false, nil
	})
}

func (c *rctx) page(o *pageNode, sel []*fsel) (omap, error) {
	b := o.b
	return render("Page", sel, "name,id", func(f *fsel) (any, bool, error) {
		switch f.name {
		case "id":
			return b.pageID, true, nil
		case "name":
			return b.name, true, nil
		case "fan_count", "followers_count":
			return b.fans, true, nil
		case "link":
			return "https://www.facebook.com/" + b.pageID, true, nil
		case "category":
			return "Brand", true, nil
		case "username":
			return b.igUsername, true, nil
		case "instagram_business_account":
			v, err := idOnly("IGUser", b.igID, f.sub)
			return v, true, err
		case "posts", "feed", "published_posts":
			return c.nested(o, b.pageID, f)
		}
		return nil, false, nil
	})
}

func (c *rctx) post(p *post, sel []*fsel) (omap, error) {
	return render("PagePost", sel, "created_time,message,id", func(f *fsel) (any, bool, error) {
		switch f.name {
		case "id":
			return p.id, true, nil
		case "message":
			return p.message, true, nil
		case "created_time", "updated_time":
			return c.ts(p.ts), true, nil
		case "from":
			v, err := render("Page", f.sub, "name,id", func(g *fsel) (any, bool, error) {
				switch g.name {
				case "id":
					return p.brand.pageID, true, nil
				case "name":
					return p.brand.name, true, nil
				}
				return nil, false, nil
			})
			return v, true, err
		case "permalink_url":
			return "https://www.facebook.com/" + strings.Replace(p.id, "_", "/posts/", 1), true, nil
		case "status_type":
			return "added_photos", true, nil
		case "comments", "reactions":
			return c.nested(p, p.id, f)
		}
		return nil, false, nil
	})
}

func (c *rctx) fbComment(cm *fbComment, sel []*fsel) (omap, error) {
	return render("Comment", sel, "created_time,from,message,id", func(f *fsel) (any, bool, error) {
		switch f.name {
		case "id":
			return cm.id, true, nil
		case "message":
			return cm.message, true, nil
		case "created_time":
			return c.ts(cm.ts), true, nil
		case "from":
			v, err := render("User", f.sub, "name,id", func(g *fsel) (any, bool, error) {
				switch g.name {
				case "id":
					return cm.by.fbID, true, nil
				case "name":
					return cm.by.fbName, true, nil
				}
				return nil, false, nil
			})
			return v, true, err
		case "like_count":
			return cm.likes, true, nil
		case "comment_count":
			return 0, true, nil
		case "permalink_url":
			return "https://www.facebook.com/" + strings.Replace(cm.post.id, "_", "/posts/", 1) + "?comment_id=" + cm.id, true, nil
		}
		return nil, false, nil
	})
}

func (c *rctx) reaction(r *reaction, sel []*fsel) (omap, error) {
	return render("Profile", sel, "id,name,type", func(f *fsel) (any, bool, error) {
		switch f.name {
		case "id":
			return r.by.fbID, true, nil
		case "name":
			return r.by.fbName, true, nil
		case "type":
			return r.typ, true, nil
		case "profile_type":
			return "user", true, nil
		}
		return nil, false, nil
	})
}

// grantedScopes are the permissions the app asks for: every token has them
// unless minted with MintOptions.Scopes.
var grantedScopes = []string{"instagram_basic", "instagram_manage_comments", "pages_read_engagement", "pages_read_user_content", "pages_show_list", "business_management"}

// debugToken answers GET /debug_token?input_token=... with the input
// token's own app, type, times, scopes and user, in Meta's shape.
func (s *Sim) debugToken(c *rctx) (any, *graphError) {
	input := c.q.Get("input_token")
	if input == "" {
		return nil, errParam("(#100) The parameter input_token is required")
	}
	t := s.lookupToken(input)
	if t == nil {
		return omap{{"data", omap{
			{"error", omap{{"code", 190}, {"message", "Invalid OAuth access token."}}},
			{"is_valid", false},
			{"scopes", []string{}},
		}}}, nil
	}
	d := omap{
		{"app_id", t.appID},
		{"type", t.typ},
		{"application", s.appNameOf(t.appID)},
	}
	if t.isApp {
		return omap{{"data", append(d, kv{"is_valid", true}, kv{"scopes", []string{}})}}, nil
	}
	d = append(d,
		kv{"data_access_expires_at", unixOrZero(t.dataAccessExp)},
		kv{"expires_at", unixOrZero(t.expiresAt)},
	)
	// A token of another app is valid for that app: debug_token says so,
	// and its app_id tells the caller it is not theirs.
	if e := s.tokenStateError(t, c.now); e != nil {
		d = append(d, kv{"is_valid", false}, kv{"error", omap{{"code", e.code}, {"message", e.msg}, {"subcode", e.subcode}}})
	} else {
		d = append(d, kv{"is_valid", true})
	}
	d = append(d, kv{"issued_at", unixOrZero(t.issuedAt)})
	if t.typ == "PAGE" {
		d = append(d, kv{"profile_id", t.principalID})
	}
	scopes := t.tokenScopes()
	d = append(d,
		kv{"scopes", nonNil(scopes)},
		kv{"granular_scopes", s.granularScopes(t, scopes)},
		kv{"user_id", t.userID},
	)
	return omap{{"data", d}}, nil
}

// granularScopes lists, for each of the token's Instagram and Page
// permissions, the accounts it applies to (business_management without
// targets), as Meta does; other permissions are not granular.
func (s *Sim) granularScopes(t *tokenRec, scopes []string) []omap {
	var igIDs, pageIDs []string
	for _, b := range s.brands {
		if s.canRead(t, b) {
			igIDs = append(igIDs, b.igID)
			pageIDs = append(pageIDs, b.pageID)
		}
	}
	out := []omap{}
	for _, sc := range scopes {
		switch {
		case strings.HasPrefix(sc, "instagram_"):
			out = append(out, omap{{"scope", sc}, {"target_ids", nonNil(igIDs)}})
		case strings.HasPrefix(sc, "pages_"):
			out = append(out, omap{{"scope", sc}, {"target_ids", nonNil(pageIDs)}})
		case sc == "business_management":
			out = append(out, omap{{"scope", sc}})
		}
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
