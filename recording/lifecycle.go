package recording

import "time"

// baseInfo is the catalog entry of a file that is being written.
func (r *Recorder) baseInfo(path string, start time.Time, specs []codecSpec) Info {
	codecs := make([]string, len(specs))
	for i, s := range specs {
		codecs[i] = s.name
	}
	return Info{
		ID: r.opts.ID, Room: r.opts.Room, Teacher: r.opts.Teacher, Label: r.opts.Label,
		Start: start, Codecs: codecs, Path: path,
	}
}

func (r *Recorder) putCatalog(info Info) {
	if r.opts.Catalog == nil {
		return
	}
	if err := r.opts.Catalog.Put(info); err != nil {
		r.log.Error().Err(err).Msg("recording catalog")
	}
}

// drainQueue releases the packets left in the queue.
func (r *Recorder) drainQueue() {
	for {
		select {
		case it := <-r.queue:
			it.p.Release()
		default:
			return
		}
	}
}

// finish runs on Stop: the queued packets and the frames held in the
// jitter buffers are written, then the file is finalized.
func (w *writer) finish() {
	for done := false; !done; {
		select {
		case it := <-w.r.queue:
			w.handle(it)
		default:
			done = true
		}
	}
	for _, in := range w.active {
		if in != nil {
			in.st.drain()
			w.pop(in)
		}
	}
	w.emit(true)
	w.close(nil)
}

// fail stops the recording after a write error; the class goes on.
func (w *writer) fail(err error) {
	err = mapWriteError(err)
	w.r.detachAll()
	w.r.drainQueue()
	w.r.log.Error().Err(err).Msg("recording stopped")
	w.close(err)
	if w.r.opts.OnError != nil {
		w.r.opts.OnError(err)
	}
}

// close finalizes the file (when there is one) and publishes the result.
func (w *writer) close(cause error) {
	w.r.detachAll()
	if w.mux == nil {
		w.r.info = w.info
		w.r.err = cause
		if cause == nil {
			w.r.err = ErrEmpty
		}
		return
	}
	size, err := w.mux.close()
	w.mux = nil
	if cause == nil {
		cause = err
	}
	w.info.Duration = time.Duration(w.lastOut) * time.Millisecond
	w.info.Size = size
	w.info.Complete = cause == nil
	w.r.putCatalog(w.info)
	w.r.info, w.r.err = w.info, cause
	w.r.log.Info().Dur("duration", w.info.Duration).Int64("size", size).
		Uint64("dropped", w.r.drops.Load()).Uint64("late", w.late).Msg("recording stopped")
}
