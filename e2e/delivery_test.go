package e2e

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"lectern/client"
)

// minDelivered is the share of the packets sent over the measured window
// that every receiver must get.
const minDelivered = 0.95

var kindNames = map[webrtc.RTPCodecType]string{webrtc.RTPCodecTypeAudio: "audio", webrtc.RTPCodecTypeVideo: "video"}

// findSubs waits until every receiver has a subscription to owner's camera
// stream with packets of every kind, and returns those subscriptions.
func findSubs(t *testing.T, receivers map[string]*client.Client, owner string, kinds []webrtc.RTPCodecType) map[string]*client.Subscription {
	t.Helper()
	subs := map[string]*client.Subscription{}
	waitFor(t, 90*time.Second, "first packets at every receiver", func() (bool, string) {
		var missing []string
		for name, c := range receivers {
			s := c.SubscriptionOf(owner, client.LabelCamera)
			if s == nil {
				missing = append(missing, name+": no offer")
				continue
			}
			for _, k := range kinds {
				if s.Stats(k).Packets == 0 {
					missing = append(missing, fmt.Sprintf("%s: no %s (%s)", name, kindNames[k], s.State()))
				}
			}
			subs[name] = s
		}
		sort.Strings(missing)
		return len(missing) == 0, strings.Join(missing, "; ")
	})
	return subs
}

// measureDelivery counts what media sends during frames samples of its
// first kind and what each subscription receives of it. Counting starts
// once everyone has media, so the join window is left out; it ends after
// the publisher stops, so packets in flight are not counted as lost.
func measureDelivery(t *testing.T, media *client.Publisher, subs map[string]*client.Subscription,
	kinds []webrtc.RTPCodecType, samples uint64) {
	t.Helper()
	sent0 := map[webrtc.RTPCodecType]client.SentStats{}
	recv0 := map[string]map[webrtc.RTPCodecType]uint64{}
	for _, k := range kinds {
		sent0[k] = media.Sent(k)
	}
	for name, s := range subs {
		recv0[name] = map[webrtc.RTPCodecType]uint64{}
		for _, k := range kinds {
			recv0[name][k] = s.Stats(k).Packets
		}
	}
	pace := kinds[0]
	waitFor(t, time.Duration(samples)*100*time.Millisecond+30*time.Second, "the measured window", func() (bool, string) {
		got := media.Sent(pace).Samples - sent0[pace].Samples
		return got >= samples, fmt.Sprintf("%d of %d samples sent", got, samples)
	})
	media.Stop()
	sent := map[webrtc.RTPCodecType]uint64{}
	for _, k := range kinds {
		sent[k] = media.Sent(k).Packets - sent0[k].Packets
		if sent[k] == 0 {
			t.Fatalf("the publisher sent no %s packets in the window", kindNames[k])
		}
	}
	waitFor(t, 30*time.Second, fmt.Sprintf("%.0f%% delivery", minDelivered*100), func() (bool, string) {
		var short []string
		for name, s := range subs {
			for _, k := range kinds {
				got := s.Stats(k).Packets - recv0[name][k]
				if float64(got) < minDelivered*float64(sent[k]) {
					short = append(short, fmt.Sprintf("%s %s %d/%d", name, kindNames[k], got, sent[k]))
				}
			}
		}
		sort.Strings(short)
		return len(short) == 0, "short: " + strings.Join(short, ", ")
	})
	for _, k := range kinds {
		least := sent[k]
		for name, s := range subs {
			least = min(least, s.Stats(k).Packets-recv0[name][k])
		}
		t.Logf("%s: %d packets sent in the window; each of %d receivers got at least %d",
			kindNames[k], sent[k], len(subs), least)
	}
}
