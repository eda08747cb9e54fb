// Package codec encrypts Temporal payloads with AES-256-GCM, so that workflow
// inputs and results (pre-signed media URLs, output URLs) and failure
// messages are stored in histories only encrypted. Keys carry an id: the
// active key encrypts, every configured key decrypts, so a key can be
// rotated by adding a new one, making it active, and removing the old one
// once no history needs it.
//
// Configure it with PAYLOAD_ENCRYPTION_KEYS ("id:base64-32-bytes", comma
// separated) and PAYLOAD_ENCRYPTION_KEY_ID (the active id; defaults to the
// first). The worker, the starter and every service that starts jobs need
// the same keys; the codec server (cmd/codec-server) lets the Web UI show
// decrypted payloads to an operator who runs it.
package codec

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"
)

// Metadata written on encrypted payloads.
const (
	// EncodingEncrypted is the metadata "encoding" of an encrypted payload.
	EncodingEncrypted = "binary/encrypted"
	// MetadataKeyID names the key that encrypted the payload.
	MetadataKeyID = "encryption-key-id"
)

// Codec is a converter.PayloadCodec that encrypts with the active key and
// decrypts with any configured key.
type Codec struct {
	active string
	aeads  map[string]cipher.AEAD
	// refuseClear makes Decode refuse a payload in the clear that
	// carries a URL (see RefusingClear).
	refuseClear bool
}

// ParseKeys reads "id:base64key,id2:base64key2" (each key 32 bytes) and the
// active key id ("" = the first listed). Errors name a key by its position
// and never repeat a value that could be a key: an id is shown only once it
// is known to be an id (a swapped "base64key:id" would otherwise print the
// key as the id).
func ParseKeys(spec, active string) (*Codec, error) {
	c := &Codec{aeads: map[string]cipher.AEAD{}}
	var first string
	n := 0
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		n++
		id, b64, ok := strings.Cut(item, ":")
		id = strings.TrimSpace(id)
		if !ok || id == "" {
			return nil, fmt.Errorf("key %d: want id:base64key", n)
		}
		if looksLikeKey(id) {
			return nil, fmt.Errorf("key %d: its id looks like a key: want id:base64key, id first (are the two swapped?)", n)
		}
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, fmt.Errorf("key %d: the part after the colon is not valid base64 (want id:base64key, id first)", n)
		}
		if len(key) != 32 {
			return nil, fmt.Errorf("key %d: must be 32 bytes (AES-256), got %d", n, len(key))
		}
		if _, dup := c.aeads[id]; dup {
			return nil, fmt.Errorf("key %d: id %q listed twice", n, id)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", n, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", n, err)
		}
		c.aeads[id] = aead
		if first == "" {
			first = id
		}
	}
	if len(c.aeads) == 0 {
		return nil, errors.New("no keys")
	}
	if active == "" {
		active = first
	}
	if _, ok := c.aeads[active]; !ok {
		return nil, fmt.Errorf("the active key id is not among the keys' ids (%s)", strings.Join(c.KeyIDs(), ", "))
	}
	c.active = active
	return c, nil
}

// looksLikeKey says whether s decodes as a 32-byte base64 key.
func looksLikeKey(s string) bool {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == 32 {
			return true
		}
	}
	return false
}

// RefusingClear returns a codec with the same keys whose Decode refuses a
// payload that arrived in the clear and carries a URL: with keys
// configured, such a payload was written by a starter or service without
// them, and its media URLs are in the history in the clear. Clear payloads
// without a URL (a decision, an empty query input) still pass.
func (c *Codec) RefusingClear() *Codec {
	cp := *c
	cp.refuseClear = true
	return &cp
}

// ErrClearPayload is the refusal of a clear payload by a strict codec.
var ErrClearPayload = errors.New("codec: refused a payload that arrived unencrypted with a URL in it: " +
	"this process has PAYLOAD_ENCRYPTION_KEYS and the starter or service that wrote the payload has not; " +
	"give it the same PAYLOAD_ENCRYPTION_KEYS (or set PAYLOAD_ENCRYPTION=migrate here while jobs started in the clear finish)")

// KeyIDs lists the configured key ids, sorted.
func (c *Codec) KeyIDs() []string {
	ids := make([]string, 0, len(c.aeads))
	for id := range c.aeads {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// ActiveKeyID is the id of the key that encrypts.
func (c *Codec) ActiveKeyID() string { return c.active }

// Encode encrypts every payload with the active key.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	aead := c.aeads[c.active]
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("codec: marshal payload: %w", err)
		}
		nonce := make([]byte, aead.NonceSize())
		if _, err := rand.Read(nonce); err != nil {
			return nil, fmt.Errorf("codec: nonce: %w", err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(EncodingEncrypted),
				MetadataKeyID:              []byte(c.active),
			},
			Data: aead.Seal(nonce, nonce, plain, []byte(c.active)),
		}
	}
	return out, nil
}

// Decode decrypts encrypted payloads (with the key their metadata names)
// and passes any other payload through unchanged.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != EncodingEncrypted {
			if c.refuseClear && carriesURL(p) {
				return nil, ErrClearPayload
			}
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataKeyID])
		aead, ok := c.aeads[id]
		if !ok {
			return nil, fmt.Errorf("codec: payload encrypted with key %q, which is not configured", truncateID(id))
		}
		data := p.GetData()
		if len(data) < aead.NonceSize() {
			return nil, errors.New("codec: encrypted payload too short")
		}
		plain, err := aead.Open(nil, data[:aead.NonceSize()], data[aead.NonceSize():], []byte(id))
		if err != nil {
			return nil, fmt.Errorf("codec: decrypt with key %q: authentication failed", truncateID(id))
		}
		var dec commonpb.Payload
		if err := proto.Unmarshal(plain, &dec); err != nil {
			return nil, fmt.Errorf("codec: unmarshal decrypted payload: %w", err)
		}
		out[i] = &dec
	}
	return out, nil
}

// truncateID bounds a key id read from a payload, which anyone who can
// write to a history chooses.
func truncateID(id string) string {
	if len(id) > 40 {
		return id[:40] + "…"
	}
	return id
}

// DataConverter wraps the default data converter with the codec.
func (c *Codec) DataConverter() converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

// FailureConverter encodes failure messages and stack traces with the
// codec too, so that error texts are encrypted in histories as well.
func (c *Codec) FailureConverter() converter.FailureConverter {
	return temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter:          c.DataConverter(),
		EncodeCommonAttributes: true,
	})
}

// carriesURL says whether a clear payload holds a URL: "://" in its bytes,
// or, for a JSON payload, in any of its strings once decoded (a client
// may escape "/" as \/ or any character as \uXXXX).
func carriesURL(p *commonpb.Payload) bool {
	data := p.GetData()
	if bytes.Contains(data, []byte("://")) {
		return true
	}
	if !bytes.HasPrefix(p.GetMetadata()[converter.MetadataEncoding], []byte("json/")) || !bytes.ContainsRune(data, '\\') {
		return false
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return true // not what its encoding says: refuse rather than guess
	}
	return anyStringContains(v, "://")
}

// anyStringContains walks a decoded JSON value for a string holding sub.
func anyStringContains(v any, sub string) bool {
	switch t := v.(type) {
	case string:
		return strings.Contains(t, sub)
	case []any:
		for _, e := range t {
			if anyStringContains(e, sub) {
				return true
			}
		}
	case map[string]any:
		for k, e := range t {
			if strings.Contains(k, sub) || anyStringContains(e, sub) {
				return true
			}
		}
	}
	return false
}
