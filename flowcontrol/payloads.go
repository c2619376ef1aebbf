package flowcontrol

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	commonpb "go.temporal.io/api/common/v1"
	"google.golang.org/protobuf/proto"
)

// Payload references: a Temporal payload over inlineLimit (a large batch, a large step
// result) is stored in Redis under its content hash and replaced in the history by a small
// reference (the claim-check pattern), so it never hits Temporal's 2 MiB limit.
const (
	// inlineLimit is the largest payload kept inline in Temporal.
	inlineLimit = 256 << 10
	// payloadTTL outlives any run: the longest sleep or wait (366 days) plus retention.
	payloadTTL = 400 * 24 * time.Hour
	// refEncoding marks a reference payload.
	refEncoding = "tempest/redis-ref"
)

// PayloadCodec is a converter.PayloadCodec that moves large payloads to Redis.
type PayloadCodec struct {
	Redis redis.UniversalClient
}

// Encode replaces each payload over inlineLimit by a reference to its copy in Redis.
func (c PayloadCodec) Encode(ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(ps))
	for i, p := range ps {
		if proto.Size(p) <= inlineLimit {
			out[i] = p
			continue
		}
		b, err := proto.Marshal(p)
		if err != nil {
			return nil, err
		}
		h := sha256.Sum256(b)
		sum := hex.EncodeToString(h[:])
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = c.Redis.Set(ctx, payloadKey(sum), b, payloadTTL).Err()
		cancel()
		if err != nil {
			return nil, fmt.Errorf("store a %d-byte payload in Redis: %w", len(b), err)
		}
		out[i] = &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte(refEncoding)}, Data: []byte(sum)}
	}
	return out, nil
}

// Decode brings referenced payloads back from Redis.
func (c PayloadCodec) Decode(ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(ps))
	for i, p := range ps {
		if string(p.GetMetadata()["encoding"]) != refEncoding {
			out[i] = p
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		b, err := c.Redis.Get(ctx, payloadKey(string(p.GetData()))).Bytes()
		cancel()
		if err != nil {
			return nil, fmt.Errorf("load payload %s from Redis: %w", p.GetData(), err)
		}
		var orig commonpb.Payload
		if err := proto.Unmarshal(b, &orig); err != nil {
			return nil, err
		}
		out[i] = &orig
	}
	return out, nil
}
