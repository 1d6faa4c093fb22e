package metasim

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func randString(r *rand.Rand, alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

// newID returns an unused numeric id: prefix followed by random digits, total
// length n.
func (s *Sim) newID(r *rand.Rand, prefix string, n int) string {
	for {
		id := prefix + randString(r, "0123456789", n-len(prefix))
		if !s.usedIDs[id] {
			s.usedIDs[id] = true
			return id
		}
	}
}

func between(r *rand.Rand, lo, hi time.Time) time.Time {
	if !hi.After(lo) {
		return lo
	}
	return lo.Add(time.Duration(r.Int64N(int64(hi.Sub(lo))))).Truncate(time.Second)
}

func ago(r *rand.Rand, now time.Time, lo, hi time.Duration) time.Time {
	return between(r, now.Add(-hi), now.Add(-lo))
}

// build creates the world. Everything here draws from one generator seeded by
// Config.Seed, so a seed always gives the same world.
func (s *Sim) build() {
	r := rand.New(rand.NewPCG(uint64(s.cfg.Seed), 0x776f726c64)) // "world"
	start := s.start
	s.appName = "Social Proof Verifier"
	s.sysUser = &sysUserNode{id: s.newID(r, "61", 15), name: "Verifier Platform System User"}
	s.objects[s.sysUser.id] = s.sysUser
	s.otherAppID, s.otherAppName = otherApp(s.cfg.AppID)

	// Brands.
	usedBrand := map[string]bool{}
	noAccess := map[string]bool{}
	for _, t := range s.cfg.NoPlatformAccess {
		noAccess[t] = true
	}
	for i := 0; i < s.cfg.Brands; i++ {
		var name string
		for {
			name = brandFirst[r.IntN(len(brandFirst))] + " " + brandSecond[r.IntN(len(brandSecond))]
			if !usedBrand[name] || len(usedBrand) >= len(brandFirst)*len(brandSecond) {
				break
			}
		}
		username := strings.ToLower(strings.ReplaceAll(name, " ", ""))
		if usedBrand[name] {
			username = fmt.Sprintf("%s%d", username, i+1)
			name = fmt.Sprintf("%s %d", name, i+1)
		}
		usedBrand[name] = true
		s.usedNames["ig:"+username] = true
		b := &brand{
			idx:        i,
			tenant:     fmt.Sprintf("brand-%02d", i+1),
			tier:       "standard",
			name:       name,
			igID:       s.newID(r, "1784", 17),
			igUsername: username,
			pageID:     s.newID(r, "10", 15),
			adminID:    s.newID(r, "7", 16),
			igSince:    ago(r, start, time.Hour, 24*time.Hour),
			followers:  1000 + r.IntN(200000),
			fans:       500 + r.IntN(100000),
		}
		b.platformAccess = !noAccess[b.tenant]
		// The admin is a Facebook user: /me of the brand's USER tokens.
		// No random draw, so a seed gives the same world as before.
		s.objects[b.adminID] = &sysUserNode{id: b.adminID, name: name + " Admin"}
		if i >= s.cfg.Brands-s.cfg.Premium {
			b.tier = "premium"
			b.tokenID = "tok-" + b.tenant
		}
		s.brands = append(s.brands, b)
		s.brandByTenant[b.tenant] = b
		s.objects[b.igID] = &igAccountNode{b}
		s.objects[b.pageID] = &pageNode{b}
	}

	// Tokens.
	platform := &tokenRec{
		id: "platform", value: "EAAB" + randString(r, alnum, 60), typ: "SYSTEM_USER",
		isPlatform: true, appID: s.cfg.AppID, budget: s.cfg.PlatformBudget, grant: "platform",
		principalID: s.sysUser.id, principalName: s.sysUser.name, userID: s.sysUser.id,
		issuedAt: start.Add(-30 * 24 * time.Hour).Truncate(time.Second),
	}
	s.addToken(platform)
	for _, b := range s.brands {
		if b.tokenID == "" {
			continue
		}
		exp := start.Add(tokenLifetime).Truncate(time.Second)
		s.addToken(&tokenRec{
			id: b.tokenID, value: "EAAB" + randString(r, alnum, 60), typ: "PAGE", brand: b,
			appID: s.cfg.AppID, budget: s.cfg.TenantBudget, buc: true, grant: b.tokenID,
			principalID: b.pageID, principalName: b.name, userID: b.adminID,
			issuedAt:      start.Add(-24 * time.Hour).Truncate(time.Second),
			defaultExpiry: exp, expiresAt: exp, lifetime: tokenLifetime,
			dataAccessExp: start.Add(90 * 24 * time.Hour).Truncate(time.Second),
		})
	}
	s.appTok = &tokenRec{id: "app", value: s.cfg.AppID + "|" + s.cfg.AppSecret, typ: "APP", isApp: true,
		appID: s.cfg.AppID, budget: s.cfg.PlatformBudget, principalID: s.cfg.AppID, principalName: s.appName}

	// Users: claimants, then a disjoint pool of noise users.
	for i := 0; i < s.cfg.Users; i++ {
		p := s.newPerson(r)
		p.ref = fmt.Sprintf("u-%d", i+1)
		s.users = append(s.users, p)
	}
	nNoise := max(300, s.cfg.Users/5, s.cfg.NoiseComments+10)
	for i := 0; i < nNoise; i++ {
		s.noise = append(s.noise, s.newPerson(r))
	}

	// Brand content with noise engagement.
	for _, b := range s.brands {
		for j := 0; j < s.cfg.MediaPerBrand; j++ {
			m := &igMedia{
				id: s.newID(r, "179", 17), brand: b,
				caption:   fmt.Sprintf("%s from %s #%s", captionPhrases[r.IntN(len(captionPhrases))], b.name, b.igUsername),
				ts:        ago(r, start, 2*24*time.Hour, 14*24*time.Hour),
				mediaType: []string{"IMAGE", "IMAGE", "VIDEO", "CAROUSEL_ALBUM"}[r.IntN(4)],
				shortcode: randString(r, alnum, 11),
				likes:     r.IntN(5000),
			}
			m.since = ago(r, start, time.Hour, 24*time.Hour)
			s.objects[m.id] = m
			b.ownMedia = insertSorted(b.ownMedia, m)
			if s.cfg.NoiseComments > 0 {
				for k := r.IntN(s.cfg.NoiseComments + 1); k > 0; k-- {
					who := s.noise[r.IntN(len(s.noise))]
					s.addIGComment(r, m, who, noiseText(r, s.noise), between(r, m.ts, start))
				}
			}
		}
		for j := 0; j < s.cfg.PostsPerBrand; j++ {
			p := &post{
				id:      b.pageID + "_" + s.newID(r, "122", 18),
				brand:   b,
				message: postMessages[r.IntN(len(postMessages))],
				ts:      ago(r, start, 2*24*time.Hour, 14*24*time.Hour),
				reacted: map[*person]bool{},
			}
			p.since = ago(r, start, time.Hour, 24*time.Hour)
			s.objects[p.id] = p
			b.posts = insertSorted(b.posts, p)
			if s.cfg.NoiseComments > 0 {
				for k := r.IntN(s.cfg.NoiseComments + 1); k > 0; k-- {
					who := s.noise[r.IntN(len(s.noise))]
					s.addFBComment(r, p, who, commentPhrases[r.IntN(len(commentPhrases))], between(r, p.ts, start))
				}
				for k := r.IntN(s.cfg.NoiseComments/2 + 1); k > 0; k-- {
					who := s.noise[r.IntN(len(s.noise))]
					s.addReaction(r, p, who, between(r, p.ts, start))
				}
			}
		}
		// Noise users' media tagging and mentioning the brand.
		if s.cfg.NoiseComments > 0 {
			for k := 3 + r.IntN(13); k > 0; k-- {
				who := s.noise[r.IntN(len(s.noise))]
				s.addUserMedia(r, who, captionPhrases[r.IntN(len(captionPhrases))], ago(r, start, 0, 14*24*time.Hour), b)
			}
			for k := 2 + r.IntN(7); k > 0; k-- {
				who := s.noise[r.IntN(len(s.noise))]
				s.addUserMedia(r, who, fmt.Sprintf("%s with @%s", captionPhrases[r.IntN(len(captionPhrases))], b.igUsername), ago(r, start, 0, 14*24*time.Hour))
			}
		}
	}
}

func (s *Sim) addToken(t *tokenRec) {
	s.tokens = append(s.tokens, t)
	s.tokenByID[t.id] = t
	s.tokenByValue[t.value] = t
}

// newPerson makes a user whose IG username and Facebook display name are
// unique (case-insensitively) across claimants, noise users and brands.
func (s *Sim) newPerson(r *rand.Rand) *person {
	var first, last, display string
	for try := 0; ; try++ {
		first = firstNames[r.IntN(len(firstNames))]
		last = lastNames[r.IntN(len(lastNames))]
		display = first + " " + last
		if try >= 20 {
			display = fmt.Sprintf("%s %c. %s", first, 'A'+r.IntN(26), last)
		}
		if try >= 60 {
			display = fmt.Sprintf("%s %c. %c. %s", first, 'A'+r.IntN(26), 'A'+r.IntN(26), last)
		}
		if !s.usedNames["fb:"+strings.ToLower(display)] {
			break
		}
	}
	s.usedNames["fb:"+strings.ToLower(display)] = true
	f, l := strings.ToLower(first), strings.ToLower(last)
	var username string
	for try := 0; ; try++ {
		switch r.IntN(7) {
		case 0:
			username = fmt.Sprintf("%s.%s%d", f, l, r.IntN(100))
		case 1:
			username = f + "_" + l
		case 2:
			username = fmt.Sprintf("%s%s%d", f, l, r.IntN(1000))
		case 3:
			username = fmt.Sprintf("%s.%s", f[:1], l)
		case 4:
			username = fmt.Sprintf("%s.%s%d", l, f, r.IntN(10))
		case 5:
			username = fmt.Sprintf("%s_%s_", f, l[:1])
		default:
			username = f + "." + l
		}
		if try > 5 {
			username = fmt.Sprintf("%s%d", username, r.IntN(100000))
		}
		if !s.usedNames["ig:"+username] {
			break
		}
	}
	s.usedNames["ig:"+username] = true
	return &person{
		igID:     s.newID(r, "1784", 17),
		username: username,
		fbID:     s.newID(r, "7", 16),
		fbName:   display,
	}
}

func noiseText(r *rand.Rand, noise []*person) string {
	t := commentPhrases[r.IntN(len(commentPhrases))]
	if r.IntN(8) == 0 {
		t = "@" + noise[r.IntN(len(noise))].username + " " + t
	}
	return t
}

func (s *Sim) addIGComment(r *rand.Rand, m *igMedia, by *person, text string, ts time.Time) *igComment {
	c := &igComment{id: s.newID(r, "180", 17), media: m, by: by, text: text, ts: ts, likes: r.IntN(20)}
	s.objects[c.id] = c
	m.comments = insertSorted(m.comments, c)
	s.whIGComment(c)
	return c
}

func (s *Sim) addFBComment(r *rand.Rand, p *post, by *person, msg string, ts time.Time) *fbComment {
	postPart := p.id[strings.IndexByte(p.id, '_')+1:]
	c := &fbComment{id: postPart + "_" + s.newID(r, "1", 16), post: p, by: by, message: msg, ts: ts, likes: r.IntN(10)}
	s.objects[c.id] = c
	p.comments = insertSorted(p.comments, c)
	s.whFBComment(c, "add", ts)
	return c
}

// addReaction adds by's reaction unless they already reacted (one per person).
func (s *Sim) addReaction(r *rand.Rand, p *post, by *person, ts time.Time) bool {
	if p.reacted[by] {
		return false
	}
	p.reacted[by] = true
	re := &reaction{by: by, typ: reactionTypes[r.IntN(len(reactionTypes))], ts: ts}
	p.reacts = insertSorted(p.reacts, re)
	s.whReaction(p, re)
	return true
}

// addUserMedia publishes a media owned by a user, tagging the given brands.
// A caption mentioning a brand puts it on that brand's mention list.
func (s *Sim) addUserMedia(r *rand.Rand, by *person, caption string, ts time.Time, tagged ...*brand) *igMedia {
	m := &igMedia{
		id: s.newID(r, "179", 17), owner: by, caption: caption, ts: ts,
		mediaType: []string{"IMAGE", "IMAGE", "VIDEO", "CAROUSEL_ALBUM"}[r.IntN(4)],
		shortcode: randString(r, alnum, 11), likes: r.IntN(300), tagged: tagged,
	}
	s.objects[m.id] = m
	by.media = insertSorted(by.media, m)
	for _, b := range tagged {
		b.tags = insertSorted(b.tags, m)
	}
	for _, b := range s.brands {
		if mentions(caption, b.igUsername) {
			b.mentionMedia = append(b.mentionMedia, m)
		}
	}
	s.whUserMedia(m)
	return m
}

// mentions reports whether text @mentions username (case-insensitively, as a
// whole username: "@lumabrew" does not match "@lumabrew_shop").
func mentions(text, username string) bool {
	lt, lu := strings.ToLower(text), "@"+strings.ToLower(username)
	for i := 0; ; {
		j := strings.Index(lt[i:], lu)
		if j < 0 {
			return false
		}
		end := i + j + len(lu)
		if end >= len(lt) || !isUsernameByte(lt[end]) && !(lt[end] == '.' && end+1 < len(lt) && isUsernameByte(lt[end+1])) {
			return true
		}
		i = i + j + 1
	}
}

func isUsernameByte(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
}
