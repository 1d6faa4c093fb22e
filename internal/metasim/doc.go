// Package metasim is a local stand-in for Meta's Graph API: a world of brands
// (tenants), their Instagram and Facebook Page accounts, media, posts,
// comments, tags, mentions and reactions, served over HTTP with Meta's paths,
// JSON shapes, cursor paging, error bodies, usage headers and throttling. It
// also generates claims with known ground truth, so tests and benchmarks can
// score a verifier against it.
//
// It shares no code with the verification engine: it imports only the
// standard library (its tests use github.com/huandu/facebook/v2 as the
// client, like the engine).
//
// # Numbers in Config and ClaimOptions
//
// Zero means "the default"; a negative value means "none": Premium -1 makes
// every brand standard, NoiseComments -1 creates no noise, FraudRate -1 makes
// every claim genuine, CodeRate -1 gives no claim codes.
//
// # Time
//
// The sim clock is start + (Config.Now() - start) * Speed; with Speed 1 it is
// the wall clock. Every timestamp the sim shows (comments, media, `since`,
// token expiries, the request log) and every duration it applies (budget
// windows, throttle blocks, Throttle's regain, usage-header regain minutes) is
// simulated time. Only Faults.Latency and Faults.SpikeLatency are wall time.
//
// Every answer (Graph calls, errors included, /debug_token,
// /oauth/access_token, and the side endpoints) carries an HTTP Date header
// with the sim clock at the time of answering, as Meta sends its own clock:
// a client compares it, not its wall clock, with expires_at.
//
// # World
//
//   - Brands "brand-01"...; the last Config.Premium are "premium" with their own
//     token "tok-<tenant>".
//   - Tokens: "platform" (type SYSTEM_USER, never expires, reads every brand
//     that granted business access: Config.NoPlatformAccess /
//     SetPlatformAccess) and "tok-<tenant>" (type PAGE: the brand's Page
//     token, which also reads the linked IG account; BUC limits; expires 60
//     simulated days after start; granted by the brand's admin user).
//     MintToken adds "tok-<tenant>-<n>" tokens (see Tenant tokens). The app
//     access token "<app_id>|<app_secret>" works too (request-log token id
//     "app"); it reads no account and is meant for /debug_token.
//   - Each brand has an admin, a Facebook user (app-scoped id): the user_id
//     of its tokens in /debug_token and /me of its USER tokens.
//   - Ids: IG users 1784 + 13 digits, IG media 179 + 14, IG comments 180 + 14,
//     Pages 10 + 13, posts "<page_id>_122<15 digits>", Page comments
//     "<post part>_<16 digits>", app-scoped Facebook user ids 7 + 15 digits.
//   - Claimant users "u-1"... have a unique IG username and a unique Facebook
//     display name (case-insensitively); noise users are a disjoint pool.
//     Only noise users engage before claims are generated.
//   - Brand media and posts were published 2-14 days before start; their
//     tasks were published (Brand.Since, the claims' `since`) 1-24 hours
//     before start.
//
// # Graph API
//
// GET under /vNN.N/ (any version), token from access_token or an
// "Authorization: Bearer" (or "OAuth") header:
//
//	/{ig-media-id}/comments   id, text, timestamp, username, from{id,username}, like_count, hidden, media{id}
//	/{ig-user-id}/tags        id, username, caption, timestamp, media_type, permalink, like_count, comments_count, ...
//	/{ig-user-id}/media       the brand's own media
//	/{ig-user-id}?fields=mentioned_media.media_id(X){...} and mentioned_comment.comment_id(X){...}
//	/{post-id}/comments       id, message, created_time, from{id,name}, like_count
//	/{post-id}/reactions      id, name, type, profile_type
//	/{page-id}/posts (feed, published_posts)
//	/{id}                     any readable object; /me; /debug_token?input_token=X
//	/oauth/access_token       grant_type=fb_exchange_token (GET query or POSTed form, with or without
//	                          /vNN.N/; see Tenant tokens)
//
// Lists are newest first, limit default 25 and max 50, with Meta's cursor
// paging and absolute `next` (and `previous`) URLs carrying the path, fields,
// limit, access_token (when it came in the query), appsecret_proof and
// cursor. Edges can also be asked for as fields (fields=comments.limit(5){text}).
// `date_format=U` and `date_format=Y-m-d\TH:i:sP` are honoured.
//
// Checks, in order: token (104 none, 190 unknown, 190 issued for another
// app, 190/458 revoked, 190/460 invalid, 190/463 expired), appsecret_proof
// when Config.AppSecret is set (not for the app token), budget (throttle
// errors), path version (2500), injected faults,
// then the object: 100/33 unknown or not readable by anyone (other users'
// media), 10 (IG) or 200 (Page) when the token cannot read the brand, 100 for
// unknown fields or edges, 2500 for field syntax errors.
//
// # Budgets and usage headers
//
// Every Graph call by a known token counts in its rolling window, whatever
// its outcome, refused calls included. A call is refused while the window
// already holds the token's capacity: Calls * (100 - usage floor) / 100. So
// calling during a block pushes the regain time out: usage drops below 100%
// only when enough calls have aged out of the window. A manual block
// (Throttle) is also extended by 1/120 of the window (30 s for 1 h) per call
// made during it, up to one window from now.
//
// X-App-Usage is on every Graph answer: call_count = calls in the window *
// 100 / Calls + usage floor, at least 100 while blocked; total_cputime and
// total_time are a quarter and a half of it. Tokens with BUC (the tenant Page
// tokens) also get X-Business-Use-Case-Usage keyed by the account id the call
// concerns (the IG user id with type "instagram", the Page id with type
// "pages"), with estimated_time_to_regain_access in whole minutes (0 when the
// next call would be admitted). Throttle errors (HTTP 400, is_transient):
// code 4 for the platform and app tokens, 17 ("User request limit reached")
// for USER tokens, 80002 (IG) and 80001 (Pages) for BUC (PAGE) tokens.
//
// # Tenant tokens
//
// Tenants connect their own Meta tokens. MintToken (or POST /_sim/tokens)
// creates one for a brand: kind "user_short" (type USER, expires 1-2 h after
// issue, like Facebook Login's tokens), "user_long" (USER, 60 days) or
// "page" (PAGE, never expires); for our app or, with app "other", for
// another app (Graph calls refuse it with a 190, /oauth/access_token will
// not exchange it, /debug_token shows the other app_id and name). Ids are
// "tok-<tenant>-<n>", values come from crypto/rand. A minted token reads
// exactly its brand's IG account and Page, has its own budget
// (Config.TenantBudget; BUC only for PAGE) and default scopes all the app
// asks for; MintOptions.Scopes replaces them (debug_token reports them;
// Graph calls do not check them). MintOptions.ExpiresIn may be negative (an
// already expired token).
//
// /debug_token shows each token's own app_id and application, type,
// expires_at (0 = never), data_access_expires_at, issued_at, scopes,
// granular_scopes (Instagram and Page permissions with the account ids,
// business_management without), user_id (the user who granted it, also for
// a PAGE token, whose profile_id is the Page) and is_valid, with the 190
// error inside data when it is not valid.
//
// /oauth/access_token?grant_type=fb_exchange_token&client_id=&client_secret=&fb_exchange_token=
// (what huandu's App.ExchangeToken POSTs) answers
// {"access_token":"<new value>","token_type":"bearer","expires_in":<seconds>}:
// a new long-lived (60 days) USER token "tok-<tenant>-<n>" of the same
// tenant, user, scopes and data access expiry (Token.ExchangedFrom names the
// input); the input token keeps working until it expires. It needs no
// access token or appsecret_proof and spends no budget; Faults' latency
// applies to it, injected errors do not. Errors (HTTP 400,
// Meta's error shape): 100 a missing parameter or another grant_type, 1
// "Error validating client secret." for a wrong client_id or client_secret
// (the secret is checked when Config.AppSecret is set), 190 for an unknown,
// expired (463), invalid (460) or revoked (458) input token, a token of
// another app ("Error validating application. ...") or one that is not a
// USER token. The request log has it under the input token's id.
//
// States (SetTokenState, POST /_sim/tokens/{id}): valid, expired, invalid,
// revoked (the user removed the app: 190/458 "The user has not authorized
// application ..."). Deauthorize (POST /_sim/tokens/{id}/deauthorize) plays
// the user removing the app: it revokes the token and every token of the
// same login (exchanged from it or it from them), then POSTs to
// Config.DeauthorizeURL, as application/x-www-form-urlencoded,
// signed_request=<sig>.<payload>: payload is base64url (no padding) of
// {"algorithm":"HMAC-SHA256","issued_at":<unix, sim>,"user_id":"<user_id>"},
// sig base64url (no padding) of the HMAC-SHA256 of the encoded payload keyed
// by the app secret. No POST without a URL, nor for a token of another app.
// A transport error or a non-2xx answer is an error (502 on the side
// endpoint); the tokens stay revoked.
//
// # Claims
//
// GenerateClaims makes claims and the actions behind them. Genuine claims
// get a qualifying action timestamped 0-60 s before the sim clock. Fraud
// variants: ig_comment: none, a comment on another of the brand's media, a
// comment before `since`, a comment without the required code; fb_comment:
// none, before `since`, without the code; fb_reaction: none, or a reaction on
// another post; ig_tag: none, a tag before `since`, a tag of another brand;
// ig_mention: the user's media that does not mention the brand (sometimes a
// near miss like @brand_official), a mention before `since`, or someone
// else's media (often one that does mention the brand). A (kind, user,
// target) pair never gets both a genuine and a fraudulent claim, and no later
// action makes an earlier fraudulent claim true. About 5% of IG claims (both
// genuine and fraudulent) give the handle in another letter case.
//
// # Webhooks
//
// Subscribe(WebhookOptions) first performs Meta's verification handshake:
// GET URL?hub.mode=subscribe&hub.challenge=<random digits>&hub.verify_token=<VerifyToken>;
// the answer must be 2xx with exactly the challenge as body. From then on
// every action added to the world (claim generation's genuine and near-miss
// actions, AddIGComment, EditComment, DeleteComment) for the subscribed
// brands (all, or WebhookOptions.Tenants) becomes an event:
//
//	IG comment on a brand's media   object instagram, entry id = brand IG user id, field "comments",
//	                                value {id, text, from{id, username}, media{id, media_product_type:"FEED"}}
//	IG caption @mentioning a brand  field "mentions", value {media_id}, under the mentioned brand
//	IG comment @mentioning a brand  field "mentions", value {media_id, comment_id} (as well as "comments")
//	Page comment added              object page, entry id = Page id, field "feed", value {item:"comment",
//	                                verb:"add", post_id, comment_id, parent_id (= post_id), message,
//	                                from{id, name}, created_time (unix)}
//	Page comment edited / deleted   same, verb "edited" / "remove" (no message on remove);
//	                                created_time is when the change happened
//	Page reaction added             value {item:"reaction", verb:"add", post_id, parent_id,
//	                                reaction_type (lowercase: "like", "love", ...), from{id, name}, created_time}
//
// Meta has no webhook for IG tags, IG comment edits or IG comment deletions,
// so none is sent (tag claims can only be checked by polling). Noise created
// with the world, before Subscribe, sends nothing.
//
// Each POST carries up to MaxBatch (default 1) due events of one object,
// with Content-Type application/json, X-Hub-Signature-256:
// sha256=<hex HMAC-SHA256 of the body keyed by Config.AppSecret> (an empty
// key when AppSecret is empty) and the legacy X-Hub-Signature (sha1).
// Shape "facebook" (default): {"object":"instagram"|"page","entry":[{"id",
// "time","changes":[{"field","value"}]}]}, consecutive events of one account
// sharing an entry; "instagram": Instagram events as flat Instagram-Login
// entries {"id","time","field","value"}; "mixed": Instagram POSTs
// alternate between the two. Page events always use "changes". Entry
// "time" is the sim clock when the POST is built; the entry id is the same
// IG user id the Graph API uses.
//
// Deliveries run on one background goroutine and never block the world.
// Delay (wall time) passes between an action and its first POST. DropRate
// is the share of events never sent (a missed webhook); Duplicates the share
// of successful POSTs sent again, unchanged, 100 ms-0.5 s (or Delay) later.
// A non-2xx answer or a transport error is retried up to 5 attempts in all,
// waiting 200ms, 600ms, 1.8s and 5s (wall), then the events count as
// failed (Meta retries for 36 hours). Unsubscribe or Close cancels what is
// queued; FlushWebhooks waits until the queue is empty.
//
// WebhookStats counts events, delivered, duplicates, dropped, failed,
// retries, canceled, pending and POSTs. WebhookEvents is the ground truth:
// each event's tenant, field, ids, the claimant (UserRef), the generated
// claim whose action caused it ("tenant/key") and its state, so a test can
// tell which claims had no webhook. GET /_sim/webhooks shows the
// subscription and stats; GET /_sim/webhooks/events the events (NDJSON).
//
// # Side endpoints
//
// Under /_sim/, not Graph calls (no budget, not in the request log);
// errors are {"error":"..."}; JSON bodies with unknown fields are refused
// (400).
//
//	GET  /_sim/healthz                  "ok"
//	GET  /_sim/world                    World, token values included
//	POST /_sim/claims?n=&fraud=&malformed=&tenants=&code_rate=&kinds=   claims, JSON Lines
//	GET  /_sim/truth                    ground truth of generated claims, NDJSON
//	GET  /_sim/webhooks                 {"subscribed","url","shape","stats"}
//	GET  /_sim/webhooks/events          WebhookEvents, NDJSON
//	GET  /_sim/requests                 the request log
//	POST /_sim/faults                   {"latency_ms","error_rate","spike_rate","spike_latency_ms"} (each optional)
//	POST /_sim/tokens                   {"tenant","kind","app","scopes","expires_in","data_access_expires_in"}
//	                                    (durations as Go strings, "90m", "-1h"): the new Token, value included
//	POST /_sim/tokens/{id}              {"state":"valid|expired|invalid|revoked","usage_floor","throttle_minutes"}
//	                                    (each optional): the Token without its value; 404 for an unknown id
//	POST /_sim/tokens/{id}/deauthorize  Deauthorize: the Token without its value; 404 unknown id,
//	                                    502 when the callback failed (the token is revoked all the same)
package metasim
