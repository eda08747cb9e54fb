package codec_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"

	"github.com/chamelaion-lipsync/worker/codec"
)

func key(b byte) string {
	return base64.StdEncoding.EncodeToString([]byte(strings.Repeat(string(b), 32)))
}

func payload(t *testing.T, v any) *commonpb.Payload {
	p, err := converter.GetDefaultDataConverter().ToPayload(v)
	require.NoError(t, err)
	return p
}

func TestRoundTripAndNothingInTheClear(t *testing.T) {
	c, err := codec.ParseKeys("k1:"+key('a'), "")
	require.NoError(t, err)
	secret := "https://cdn.example.com/v.mp4?X-Amz-Signature=SIGSECRET"
	enc, err := c.Encode([]*commonpb.Payload{payload(t, secret)})
	require.NoError(t, err)
	require.NotContains(t, string(enc[0].Data), "SIGSECRET")
	require.Equal(t, codec.EncodingEncrypted, string(enc[0].Metadata["encoding"]))
	require.Equal(t, "k1", string(enc[0].Metadata[codec.MetadataKeyID]))
	dec, err := c.Decode(enc)
	require.NoError(t, err)
	var got string
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(dec[0], &got))
	require.Equal(t, secret, got)

	// The same value encrypts differently every time (random nonce).
	again, err := c.Encode([]*commonpb.Payload{payload(t, secret)})
	require.NoError(t, err)
	require.NotEqual(t, enc[0].Data, again[0].Data)
}

func TestKeyRotation(t *testing.T) {
	old, err := codec.ParseKeys("k1:"+key('a'), "")
	require.NoError(t, err)
	enc, err := old.Encode([]*commonpb.Payload{payload(t, "v")})
	require.NoError(t, err)

	rotated, err := codec.ParseKeys("k1:"+key('a')+",k2:"+key('b'), "k2")
	require.NoError(t, err)
	require.Equal(t, "k2", rotated.ActiveKeyID())
	_, err = rotated.Decode(enc)
	require.NoError(t, err, "old payloads still decrypt")
	fresh, err := rotated.Encode([]*commonpb.Payload{payload(t, "v")})
	require.NoError(t, err)
	require.Equal(t, "k2", string(fresh[0].Metadata[codec.MetadataKeyID]))

	_, err = old.Decode(fresh)
	require.ErrorContains(t, err, `key "k2", which is not configured`)
}

func TestTamperingIsDetectedAndPlainPayloadsPassThrough(t *testing.T) {
	c, err := codec.ParseKeys("k1:"+key('a'), "")
	require.NoError(t, err)
	enc, err := c.Encode([]*commonpb.Payload{payload(t, "v")})
	require.NoError(t, err)
	enc[0].Data[len(enc[0].Data)-1] ^= 1
	_, err = c.Decode(enc)
	require.ErrorContains(t, err, "authentication failed")

	plain := payload(t, "plain")
	out, err := c.Decode([]*commonpb.Payload{plain})
	require.NoError(t, err)
	require.Same(t, plain, out[0])
}

func TestParseKeysErrorsNeverShowAKey(t *testing.T) {
	good := key('a')
	cases := map[string][2]string{
		"no keys":        {"", ""},
		"not base64":     {"k1:!!!" + good, ""},
		"short key":      {"k1:" + base64.StdEncoding.EncodeToString([]byte("short")), ""},
		"missing id":     {":" + good, ""},
		"no separator":   {good, ""},
		"duplicate":      {"k1:" + good + ",k1:" + good, ""},
		"unknown active": {"k1:" + good, "k9"},
	}
	for name, tc := range cases {
		_, err := codec.ParseKeys(tc[0], tc[1])
		require.Error(t, err, name)
		require.NotContains(t, err.Error(), good, name)
	}
}
