// Package deps pins the project's dependencies while packages are being written. Removed before release.
package deps

import (
	_ "github.com/at-wat/ebml-go/webm"
	_ "github.com/chromedp/chromedp"
	_ "github.com/gorilla/websocket"
	_ "github.com/nats-io/nats-server/v2/server"
	_ "github.com/nats-io/nats.go"
	_ "github.com/nats-io/nats.go/jetstream"
	_ "github.com/pion/interceptor"
	_ "github.com/pion/interceptor/pkg/nack"
	_ "github.com/pion/logging"
	_ "github.com/pion/rtcp"
	_ "github.com/pion/rtp"
	_ "github.com/pion/rtp/codecs"
	_ "github.com/pion/webrtc/v4"
	_ "github.com/pion/webrtc/v4/pkg/media/ivfreader"
	_ "github.com/pion/webrtc/v4/pkg/media/oggreader"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/rs/zerolog"
	_ "github.com/stretchr/testify/require"
	_ "go.uber.org/goleak"
	_ "gopkg.in/yaml.v3"
)
