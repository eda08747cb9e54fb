package chamelaion

import (
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
)

// Redacted replaces every credential the redactor removes.
const Redacted = "[REDACTED]"

// maxRedactInput bounds the text the patterns run over: a server message
// is cut to maxMessage afterwards anyway, and the key is removed from the
// whole text before this cut, so no partial key survives it.
const maxRedactInput = 16 << 10

// secretNames are the parameter and field names whose values are
// credentials (signatures, tokens, keys of pre-signed URLs and APIs).
const secretNames = `x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|x-goog-credential|` +
	`signature|key-pair-id|policy|access_token|refresh_token|id_token|token|api_key|apikey|api-key|secret|` +
	`password|sig|hash|hmac|hdnts|auth_key|authkey`

// assign is the "=" between a name and its value, in every encoding a
// server echoes: plain (with spaces around), percent-encoded once or
// twice, JSON's \u003d, HTML's &#61;, the full-width ＝, or a colon (a
// header, or a JSON member "name": "value").
const assign = `(?:\s*(?:=|%3D|%253D|\\u003d|&#61;|＝)\s*|"?\s*:\s*"?)`

var (
	// querySecret is a URL with a query string, plain or JSON-escaped
	// (https:\/\/host\/path?…): the query is what pre-signed URLs sign.
	querySecret = regexp.MustCompile(`(?i)(https?:(?:\\?/){2}[^\s"'<>?#]*)\?[^\s"'<>]*`)
	// encodedQuerySecret is a percent-encoded URL (once or twice) with a
	// query string.
	encodedQuerySecret = regexp.MustCompile(`(?i)(https?(?:%3A|%253A)(?:%2F|%252F){2}[^\s"'<>]*?)(?:%3F|%253F)[^\s"'<>]*`)
	// anyQuerySecret is a query string after anything, a URL without its
	// scheme (cdn.example.com/v.mp4?auth_key=…, //host/p?hash=…), or a
	// partly encoded one (https%3A%2F%2Fhost%2Fp?…, \u003f…\u003d): a
	// "?" followed by a name and an "=".
	anyQuerySecret = regexp.MustCompile(`(?i)(\?|\\u003f|%3F|%253F)[a-z0-9_.~%-]+(?:=|%3D|%253D|\\u003d|&#61;)[^\s"'<>]*`)
	// userinfoSecret is a URL's user:password@, whatever its scheme
	// (postgres://user:password@host too).
	userinfoSecret = regexp.MustCompile(`(?i)([a-z][a-z0-9+.-]*:(?:\\?/){2})[^\s/\\"'<>]+@`)
	// paramSecret is a bare signature or token parameter or field, with
	// any of the assignments above: X-Amz-Signature=…, "signature": "…",
	// X-Amz-Security-Token: …, sig=… (Azure), and their credentials.
	paramSecret = regexp.MustCompile(`(?i)((?:` + secretNames + `)` + assign + `)[^\s&"'<>,;}]+`)
	// bearerSecret is an Authorization header's credentials.
	bearerSecret = regexp.MustCompile(`(?i)((?:bearer|basic)\s+)[^\s"'<>,;]+`)
	// authorizationSecret is whatever follows an Authorization header's
	// name (its scheme and credentials, whatever the scheme).
	authorizationSecret = regexp.MustCompile(`(?i)(authorization"?\s*[:=]\s*"?)[^\s"'<>,;]+(?:\s+[^\s"'<>,;]+)?`)
)

// Redact removes credentials from text a server wrote: the query strings
// of URLs (plain, JSON-escaped as https:\/\/, or percent-encoded), bare
// signature and token parameters (X-Amz-Signature=, Signature=, token=,
// sig=, …), bearer credentials and the passwords of URLs. What an operator
// needs to recognise remains: the host and path of a URL, the rest of the
// message.
func Redact(s string) string {
	for range 4 { // a replacement can join pieces into a new match
		next := encodedQuerySecret.ReplaceAllString(s, "$1%3F"+Redacted)
		next = querySecret.ReplaceAllString(next, "$1?"+Redacted)
		next = anyQuerySecret.ReplaceAllString(next, "$1"+Redacted)
		next = authorizationSecret.ReplaceAllString(next, "$1"+Redacted)
		next = userinfoSecret.ReplaceAllString(next, "$1"+Redacted+"@")
		next = paramSecret.ReplaceAllString(next, "$1"+Redacted)
		next = bearerSecret.ReplaceAllString(next, "$1"+Redacted)
		if next == s {
			break
		}
		s = next
	}
	return s
}

// SanitizeMessage makes a server's message fit for rows, logs, errors and
// notifications: credentials redacted (see Redact), white space collapsed,
// cut to 200 bytes.
func SanitizeMessage(s string) string { return sanitize(Redact, s) }

func sanitize(redact func(string) string, s string) string {
	return truncate(collapseSpace(redact(s)), maxMessage)
}

// newRedactor returns a function that removes the API key (as it is, and
// as it would appear percent-encoded or JSON-escaped) and everything
// Redact removes.
func newRedactor(apiKey string) func(string) string {
	var forms []string
	if apiKey != "" {
		forms = append(forms, apiKey, url.QueryEscape(apiKey), url.PathEscape(apiKey))
		if b, err := json.Marshal(apiKey); err == nil {
			forms = append(forms, strings.Trim(string(b), `"`))
		}
	}
	var keyForms *regexp.Regexp
	if len(forms) > 0 {
		quoted := make([]string, len(forms))
		for i, f := range forms {
			quoted[i] = regexp.QuoteMeta(f)
		}
		// Whatever its case: a server may echo the key upper-cased.
		keyForms = regexp.MustCompile(`(?i)` + strings.Join(quoted, "|"))
	}
	return func(s string) string {
		if keyForms != nil {
			s = keyForms.ReplaceAllLiteralString(s, Redacted)
		}
		if len(s) > maxRedactInput {
			s = truncate(s, maxRedactInput)
		}
		return Redact(s)
	}
}
