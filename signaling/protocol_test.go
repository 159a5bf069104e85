package signaling

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/sfu"
)

func TestDecodeRequest(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 1001)
	cases := []struct {
		name string
		raw  string
		code string // "" when the request is good
		rid  string
		typ  string
	}{
		{"join", `{"type":"join","data":{"token":"x"}}`, "", "", typeJoin},
		{"join with room and rid", `{"type":"join","rid":"1","data":{"token":"x","room":"r1"}}`, "", "1", typeJoin},
		{"chat", `{"type":"chat","rid":"c-1","data":{"text":"hello"}}`, "", "c-1", typeChat},
		{"leave without data", `{"type":"leave"}`, "", "", typeLeave},
		{"leave with null data", `{"type":"leave","data":null}`, "", "", typeLeave},
		{"ice end of candidates", `{"type":"ice","data":{"stream":"s1","candidate":null}}`, "", "", typeICE},
		{"ice candidate", `{"type":"ice","data":{"stream":"u:s1","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0}}}`, "", "", typeICE},
		{"publish", `{"type":"publish","data":{"stream":"cam_1-A","label":"camera","sdp":"v=0"}}`, "", "", typePublish},
		{"hand", `{"type":"hand","data":{"raised":false}}`, "", "", typeHand},
		{"invite", `{"type":"invite","data":{"id":"p1"}}`, "", "", typeInvite},
		{"subscribe", `{"type":"subscribe","data":{"stream":"u:s1"}}`, "", "", typeSubscribe},
		{"subscribe without stream", `{"type":"subscribe","data":{}}`, "bad_request", "", typeSubscribe},

		{"not json", `hello`, "bad_request", "", ""},
		{"truncated", `{"type":"chat"`, "bad_request", "", ""},
		{"array", `[1,2]`, "bad_request", "", ""},
		{"null", `null`, "bad_request", "", ""},
		{"trailing data", `{"type":"leave"} {}`, "bad_request", "", ""},
		{"unknown envelope field", `{"type":"leave","x":1}`, "bad_request", "", ""},
		{"missing type", `{"rid":"9","data":{}}`, "bad_request", "9", ""},
		{"unknown type", `{"type":"dance","rid":"7"}`, "unknown_type", "7", "dance"},
		{"server-only type", `{"type":"welcome","data":{}}`, "unknown_type", "", "welcome"},
		{"type not a string", `{"type":5}`, "bad_request", "", ""},
		{"rid not a string", `{"type":"leave","rid":5}`, "bad_request", "", ""},
		{"rid too long", `{"type":"leave","rid":"` + strings.Repeat("r", 65) + `"}`, "bad_request", "", typeLeave},
		{"data not an object", `{"type":"chat","rid":"2","data":"hi"}`, "bad_request", "2", typeChat},
		{"wrong field type", `{"type":"chat","data":{"text":5}}`, "bad_request", "", typeChat},
		{"unknown payload field", `{"type":"chat","data":{"text":"a","color":"red"}}`, "bad_request", "", typeChat},
		{"empty chat", `{"type":"chat","data":{"text":""}}`, "bad_request", "", typeChat},
		{"chat too long", `{"type":"chat","data":{"text":"` + long + `"}}`, "bad_request", "", typeChat},
		{"join without token", `{"type":"join","data":{}}`, "bad_request", "", typeJoin},
		{"hand without raised", `{"type":"hand","data":{}}`, "bad_request", "", typeHand},
		{"hand raised string", `{"type":"hand","data":{"raised":"yes"}}`, "bad_request", "", typeHand},
		{"bad stream id", `{"type":"publish","data":{"stream":"a b","label":"camera","sdp":"v=0"}}`, "bad_request", "", typePublish},
		{"stream id too long", `{"type":"publish","data":{"stream":"` + strings.Repeat("a", 65) + `","label":"camera","sdp":"v=0"}}`, "bad_request", "", typePublish},
		{"bad label", `{"type":"publish","data":{"stream":"s","label":"mic","sdp":"v=0"}}`, "bad_request", "", typePublish},
		{"publish without sdp", `{"type":"publish","data":{"stream":"s","label":"camera"}}`, "bad_request", "", typePublish},
		{"answer without stream", `{"type":"answer","data":{"sdp":"v=0"}}`, "bad_request", "", typeAnswer},
		{"moderation without id", `{"type":"remove","data":{"id":""}}`, "bad_request", "", typeRemove},
		{"leave with data", `{"type":"leave","data":{"now":true}}`, "bad_request", "", typeLeave},
		{"ice candidate wrong type", `{"type":"ice","data":{"stream":"s","candidate":"x"}}`, "bad_request", "", typeICE},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, err := decodeRequest([]byte(tc.raw))
			require.Equal(t, tc.rid, req.RID)
			require.Equal(t, tc.typ, req.Type)
			if tc.code == "" {
				require.NoError(t, err)
				require.NotNil(t, req.Data)
				return
			}
			require.Error(t, err)
			require.Equal(t, tc.code, protocolCode(err))
			require.Nil(t, req.Data)
		})
	}
}

func TestValidNames(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in string
		ok bool
	}{
		{"Ada", true},
		{"Zoë Ünal", true},
		{"", false},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{"tab\there", false},
		{"bad\xffutf8", false},
		{strings.Repeat("é", 33), false}, // 66 bytes: over the token's limit
	}
	for _, tc := range cases {
		require.Equal(t, tc.ok, validName(tc.in), "%q", tc.in)
	}
}

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err   error
		http  int
		close int
		code  string
	}{
		{auth.ErrExpired, http.StatusUnauthorized, closeUnauthorized, "internal"},
		{auth.ErrSignature, http.StatusUnauthorized, closeUnauthorized, "internal"},
		{fmt.Errorf("%w: x", ErrUnauthorized), http.StatusUnauthorized, closeUnauthorized, "internal"},
		{ErrOtherRoom, http.StatusForbidden, closeForbidden, "internal"},
		{ErrBanned, http.StatusForbidden, closeForbidden, "internal"},
		{ErrClosedMode, http.StatusForbidden, websocket.CloseInternalServerErr, "internal"},
		{ErrBadName, http.StatusBadRequest, websocket.CloseInternalServerErr, "internal"},
		{fmt.Errorf("%w: x", ErrBadRequest), http.StatusBadRequest, websocket.CloseInternalServerErr, "bad_request"},
		{ErrForbidden, http.StatusForbidden, closeForbidden, "forbidden"},
		{ErrNotFound, http.StatusNotFound, websocket.CloseInternalServerErr, "not_found"},
		{ErrConflict, http.StatusConflict, websocket.CloseInternalServerErr, "conflict"},
		{ErrUnknownType, http.StatusInternalServerError, websocket.CloseInternalServerErr, "unknown_type"},
		{fmt.Errorf("%w: x", sfu.ErrBadSDP), http.StatusInternalServerError, websocket.CloseInternalServerErr, "bad_sdp"},
		{ErrShuttingDown, http.StatusServiceUnavailable, websocket.CloseGoingAway, "internal"},
		{ErrTooBig, http.StatusInternalServerError, websocket.CloseMessageTooBig, "internal"},
		{ErrRateLimited, http.StatusInternalServerError, closeRateLimited, "internal"},
		{ErrReplaced, http.StatusInternalServerError, closeReplaced, "internal"},
		{ErrClassEnded, http.StatusInternalServerError, closeClassEnded, "internal"},
		{ErrLeft, http.StatusInternalServerError, websocket.CloseNormalClosure, "internal"},
		{ErrSlowConsumer, http.StatusInternalServerError, websocket.ClosePolicyViolation, "internal"},
		{errors.New("boom"), http.StatusInternalServerError, websocket.CloseInternalServerErr, "internal"},
	}
	for _, tc := range cases {
		require.Equal(t, tc.http, httpStatus(tc.err), "%v", tc.err)
		require.Equal(t, tc.close, closeCode(tc.err), "%v", tc.err)
		require.Equal(t, tc.code, protocolCode(tc.err), "%v", tc.err)
	}
	require.Equal(t, "internal error", clientMessage(errors.New("secret detail")))
	require.Equal(t, ErrNoEngine.Error(), clientMessage(ErrNoEngine))
	require.Equal(t, "the class has ended", clientMessage(ErrClassEnded), "the close reason the page shows")
}
