package recording

// av1Sequence holds the sequence header fields (AV1 spec 5.5) that the
// AV1CodecConfigurationRecord, the track size and key frame detection need.
type av1Sequence struct {
	profile      byte
	level0       byte // seq_level_idx[0]
	tier0        bool // seq_tier[0]
	reducedStill bool // reduced_still_picture_header
	width        uint64
	height       uint64
	highBitdepth bool
	twelveBit    bool
	mono         bool
	subX, subY   bool
	chromaPos    byte // chroma_sample_position
}

// parseAV1Sequence reads sequence_header_obu (AV1 spec 5.5.1) up to and
// including color_config. It fails on a truncated header.
func parseAV1Sequence(p []byte) (av1Sequence, bool) {
	r := bitReader{b: p}
	var s av1Sequence
	s.profile = byte(r.bits(3))
	if s.profile > 2 {
		return s, false
	}
	r.bit() // still_picture
	s.reducedStill = r.bit() == 1
	if s.reducedStill {
		s.level0 = byte(r.bits(5))
	} else {
		s.readOperatingPoints(&r)
	}
	wBits, hBits := int(r.bits(4))+1, int(r.bits(4))+1
	s.width, s.height = r.bits(wBits)+1, r.bits(hBits)+1
	if !s.reducedStill && r.bit() == 1 { // frame_id_numbers_present_flag
		r.bits(7) // delta_frame_id_length_minus_2, additional_frame_id_length_minus_1
	}
	s.skipCodingTools(&r)
	s.readColorConfig(&r)
	return s, !r.overrun()
}

// readOperatingPoints reads timing_info, decoder_model_info and the
// operating points (5.5.1, 5.5.3, 5.5.4, 5.5.5), keeping the level and
// tier of operating point 0.
func (s *av1Sequence) readOperatingPoints(r *bitReader) {
	decoderModel, delayLen := false, 0
	if r.bit() == 1 { // timing_info_present_flag
		r.bits(64)        // num_units_in_display_tick, time_scale
		if r.bit() == 1 { // equal_picture_interval
			readUVLC(r) // num_ticks_per_picture_minus_1
		}
		decoderModel = r.bit() == 1
		if decoderModel {
			delayLen = int(r.bits(5)) + 1 // buffer_delay_length_minus_1
			r.bits(32 + 5 + 5)            // num_units_in_decoding_tick, two lengths
		}
	}
	initialDelay := r.bit() == 1
	count := int(r.bits(5)) + 1 // operating_points_cnt_minus_1
	for i := range count {
		r.bits(12) // operating_point_idc
		level := byte(r.bits(5))
		tier := level > 7 && r.bit() == 1
		if i == 0 {
			s.level0, s.tier0 = level, tier
		}
		if decoderModel && r.bit() == 1 { // decoder_model_present_for_this_op
			r.bits(2*delayLen + 1) // decoder/encoder_buffer_delay, low_delay_mode_flag
		}
		if initialDelay && r.bit() == 1 {
			r.bits(4) // initial_display_delay_minus_1
		}
	}
}

// readUVLC skips a variable length code (AV1 spec 4.10.3).
func readUVLC(r *bitReader) {
	zeros := 0
	for r.bit() == 0 && !r.overrun() {
		zeros++
	}
	if zeros < 32 {
		r.bits(zeros)
	}
}

// skipCodingTools skips the tool flags between the frame size and
// color_config (5.5.1).
func (s *av1Sequence) skipCodingTools(r *bitReader) {
	r.bits(3) // use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter
	if !s.reducedStill {
		r.bits(4) // interintra_compound, masked_compound, warped_motion, dual_filter
		orderHint := r.bit() == 1
		if orderHint {
			r.bits(2) // enable_jnt_comp, enable_ref_frame_mvs
		}
		forceScreenContent := uint64(2) // SELECT_SCREEN_CONTENT_TOOLS
		if r.bit() == 0 {               // seq_choose_screen_content_tools
			forceScreenContent = r.bit()
		}
		if forceScreenContent > 0 && r.bit() == 0 { // seq_choose_integer_mv
			r.bit() // seq_force_integer_mv
		}
		if orderHint {
			r.bits(3) // order_hint_bits_minus_1
		}
	}
	r.bits(3) // enable_superres, enable_cdef, enable_restoration
}

// readColorConfig reads color_config (5.5.2) for the bit depth and chroma
// format fields of the configuration record.
func (s *av1Sequence) readColorConfig(r *bitReader) {
	s.highBitdepth = r.bit() == 1
	if s.profile == 2 && s.highBitdepth {
		s.twelveBit = r.bit() == 1
	}
	if s.profile != 1 {
		s.mono = r.bit() == 1
	}
	primaries, transfer, matrix := uint64(2), uint64(2), uint64(2) // unspecified
	if r.bit() == 1 {                                              // color_description_present_flag
		primaries, transfer, matrix = r.bits(8), r.bits(8), r.bits(8)
	}
	switch {
	case s.mono:
		r.bit() // color_range
		s.subX, s.subY = true, true
		return
	case primaries == 1 && transfer == 13 && matrix == 0: // BT.709, sRGB, identity: 4:4:4
		return
	}
	r.bit() // color_range
	switch {
	case s.profile == 0:
		s.subX, s.subY = true, true
	case s.profile == 2 && s.twelveBit:
		s.subX = r.bit() == 1
		s.subY = s.subX && r.bit() == 1
	case s.profile == 2:
		s.subX = true
	}
	if s.subX && s.subY {
		s.chromaPos = byte(r.bits(2))
	}
}
