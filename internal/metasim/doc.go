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
// # World
//
//   - Brands "brand-01"...; the last Config.Premium are "premium" with their own
//     token "tok-<tenant>".
//   - Tokens: "platform" (type SYSTEM_USER, never expires, reads every brand
//     that granted business access: Config.NoPlatformAccess /
//     SetPlatformAccess) and "tok-<tenant>" (type PAGE: the brand's Page
//     token, which also reads the linked IG account; BUC limits; expires 60
//     simulated days after start). The app access token "<app_id>|<app_secret>"
//     works too (request-log token id "app"); it reads no account and is meant
//     for /debug_token.
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
//
// Lists are newest first, limit default 25 and max 50, with Meta's cursor
// paging and absolute `next` (and `previous`) URLs carrying the path, fields,
// limit, access_token (when it came in the query), appsecret_proof and
// cursor. Edges can also be asked for as fields (fields=comments.limit(5){text}).
// `date_format=U` and `date_format=Y-m-d\TH:i:sP` are honoured.
//
// Checks, in order: token (104 none, 190 unknown, 190/460 invalid, 190/463
// expired), appsecret_proof when Config.AppSecret is set (not for the app
// token), budget (throttle errors), path version (2500), injected faults,
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
// code 4 for the platform and app tokens, 80002 (IG) and 80001 (Pages) for
// BUC tokens.
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
package metasim
