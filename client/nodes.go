package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Several nodes (docs/cluster.md). Nodes share the token secret, so one
// token joins on any node. A client moves to another node in two cases:
//
//   - the server sends `redirect` {url, reason} and closes with 4307 (the
//     class's origin or a node with room is elsewhere): it joins at url;
//   - its node cannot be reached: it tries the other nodes it knows, from
//     Options.Nodes and the last welcome's `nodes`, round-robin.
//
// A close that another node would give too (4001 bad token, 4003
// forbidden) ends the attempt at once: the nodes share the secret and the
// class, so trying elsewhere cannot help.

const (
	// maxRedirects bounds a chain of redirects: two nodes that disagree
	// about a class's origin must not bounce a client forever.
	maxRedirects = 4
	// Backoff between rounds over every known node, doubling (with
	// Reconnect only: Dial makes one round).
	reconnectMinWait = 250 * time.Millisecond
	reconnectMaxWait = 5 * time.Second
)

// BaseURL is the base URL of the node this client joined.
func (c *Client) BaseURL() string { return c.base }

// Nodes are the base URLs the client knows of its cluster: the last
// welcome's live nodes, else Options.Nodes.
func (c *Client) Nodes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.nodes) > 0 {
		return append([]string(nil), c.nodes...)
	}
	return normalizeAll(c.opts.Nodes)
}

// Redirected returns the redirect the server sent, or nil. The event is
// also delivered on Events() and to OnEvent.
func (c *Client) Redirected() *Redirect {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.redirect == nil {
		return nil
	}
	r := *c.redirect
	return &r
}

// Reconnect joins again as the same participant (same token and options)
// once c has ended, dropping c first if it still runs. It goes where a
// redirect said, else back to c's node, else to the other known nodes,
// round after round with a growing pause, until one welcomes it, a node
// refuses the token (4001, 4003), or ctx ends. A client whose class was
// ended (4010) gets ErrClassEnded: it stays ended.
func (c *Client) Reconnect(ctx context.Context) (*Client, error) {
	if CloseCode(c.Err()) == CloseClassEnded {
		return nil, fmt.Errorf("%w: %w", ErrClassEnded, c.Err())
	}
	c.Abort()
	first := ""
	if r := c.Redirected(); r != nil {
		first = r.URL
	}
	opts := c.opts
	opts.Nodes = append(c.Nodes(), normalizeAll(c.opts.Nodes)...)
	list := candidates(c.base, first, opts.Nodes)
	wait := reconnectMinWait
	for {
		nc, err := dialNodes(ctx, list, c.token, opts)
		if err == nil || isFinal(err) || ctx.Err() != nil {
			return nc, err
		}
		c.log.Debug().Err(err).Dur("wait", wait).Msg("client: no node reachable, trying again")
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, reconnectMaxWait)
	}
}

// dialNodes makes one round over list: the first node that welcomes the
// client wins; a redirect jumps to the node it names (at most
// maxRedirects times); an unreachable node or a transient close moves on
// to the next; a final close ends the round.
func dialNodes(ctx context.Context, list []string, token string, opts Options) (*Client, error) {
	var errs []error
	redirects := 0
	for i := 0; i < len(list); i++ {
		c, err := dialOne(ctx, list[i], token, opts)
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil || isFinal(err) {
			return nil, err
		}
		errs = append(errs, err)
		var re *RedirectError
		if errors.As(err, &re) {
			if redirects++; redirects > maxRedirects {
				return nil, fmt.Errorf("%w: %w", ErrTooManyRedirects, err)
			}
			if _, werr := wsURL(re.URL); werr != nil {
				continue // a bad target: try the other nodes instead
			}
			// Visit the target next, then carry on with the rest.
			list = append(list[:i+1], append([]string{normalizeBase(re.URL)}, list[i+1:]...)...)
		}
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	return nil, fmt.Errorf("%w: %w", ErrUnreachable, errors.Join(errs...))
}

// isFinal reports a refusal that every node would repeat: a bad or
// expired token (4001) or a forbidden join (4003).
func isFinal(err error) bool {
	switch CloseCode(err) {
	case CloseUnauthorized, CloseForbidden:
		return true
	}
	return false
}

// candidates lists first (when set), then base, then the other nodes,
// each once, in order.
func candidates(base, first string, nodes []string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(u string) {
		u = normalizeBase(u)
		if u != "" && !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	add(first)
	add(base)
	for _, n := range nodes {
		add(n)
	}
	return out
}

// normalizeBase trims spaces and trailing slashes so that one node is one
// entry, however it was written.
func normalizeBase(u string) string {
	return strings.TrimRight(strings.TrimSpace(u), "/")
}

func normalizeAll(list []string) []string {
	out := make([]string, 0, len(list))
	for _, u := range list {
		if u = normalizeBase(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}
