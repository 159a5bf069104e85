package recording

// avcSize reads the picture size of an AVC key frame (length-prefixed NAL
// units) from its sequence parameter set (H.264 7.3.2.1.1), cropping
// included (7.4.2.1.1, frame_crop_*_offset). It is 0, 0 when the frame
// carries no SPS or the SPS is malformed.
func avcSize(f []byte) (w, h uint64) {
	for _, n := range avcNALUs(f) {
		if n[0]&0x1f == 7 {
			return spsSize(unescapeRBSP(n[1:]))
		}
	}
	return 0, 0
}

// unescapeRBSP removes the emulation prevention bytes (0x000003 becomes
// 0x0000, H.264 7.4.1) so the SPS's bits can be read.
func unescapeRBSP(b []byte) []byte {
	out := make([]byte, 0, len(b))
	zeros := 0
	for _, c := range b {
		if zeros >= 2 && c == 3 {
			zeros = 0
			continue
		}
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
		out = append(out, c)
	}
	return out
}

// highProfiles have the chroma and bit depth fields in their SPS.
func highProfile(idc uint64) bool {
	switch idc {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		return true
	}
	return false
}

// spsSize parses an SPS's RBSP up to the frame size.
func spsSize(b []byte) (w, h uint64) {
	r := bitReader{b: b}
	idc := r.bits(8)
	r.bits(16) // constraint flags, level_idc
	r.ue()     // seq_parameter_set_id
	chroma := uint64(1)
	if highProfile(idc) {
		if chroma = r.ue(); chroma == 3 {
			r.bit() // separate_colour_plane_flag
		}
		r.ue()  // bit_depth_luma_minus8
		r.ue()  // bit_depth_chroma_minus8
		r.bit() // qpprime_y_zero_transform_bypass_flag
		if r.bit() == 1 {
			skipScalingLists(&r, chroma)
		}
	}
	r.ue() // log2_max_frame_num_minus4
	skipPicOrderCount(&r)
	r.ue()  // max_num_ref_frames
	r.bit() // gaps_in_frame_num_value_allowed_flag
	wMBs, hUnits := r.ue()+1, r.ue()+1
	frameMBsOnly := r.bit()
	if frameMBsOnly == 0 {
		r.bit() // mb_adaptive_frame_field_flag
	}
	r.bit() // direct_8x8_inference_flag
	w, h = wMBs*16, (2-frameMBsOnly)*hUnits*16
	if r.bit() == 1 { // frame_cropping_flag
		cx, cy := cropUnits(chroma, frameMBsOnly)
		left, right, top, bottom := r.ue(), r.ue(), r.ue(), r.ue()
		if cx*(left+right) >= w || cy*(top+bottom) >= h {
			return 0, 0
		}
		w, h = w-cx*(left+right), h-cy*(top+bottom)
	}
	if r.overrun() || w > 16384 || h > 16384 {
		return 0, 0
	}
	return w, h
}

// cropUnits are CropUnitX and CropUnitY (H.264 7-19 to 7-22).
func cropUnits(chroma, frameMBsOnly uint64) (x, y uint64) {
	switch chroma {
	case 0: // monochrome
		return 1, 2 - frameMBsOnly
	case 1: // 4:2:0
		return 2, 2 * (2 - frameMBsOnly)
	case 2: // 4:2:2
		return 2, 2 - frameMBsOnly
	}
	return 1, 2 - frameMBsOnly
}

// skipScalingLists skips seq_scaling_list_present_flag and the lists
// (7.3.2.1.1.1): 6 lists of 16 and 2 (6 for 4:4:4) of 64 coefficients.
func skipScalingLists(r *bitReader, chroma uint64) {
	n := 8
	if chroma == 3 {
		n = 12
	}
	for i := range n {
		if r.bit() == 0 {
			continue
		}
		size := 16
		if i >= 6 {
			size = 64
		}
		last, next := int64(8), int64(8)
		for range size {
			if next != 0 {
				next = (last + r.se() + 256) % 256
			}
			if next != 0 {
				last = next
			}
		}
	}
}

// skipPicOrderCount skips pic_order_cnt_type and its fields.
func skipPicOrderCount(r *bitReader) {
	switch r.ue() {
	case 0:
		r.ue() // log2_max_pic_order_cnt_lsb_minus4
	case 1:
		r.bit() // delta_pic_order_always_zero_flag
		r.se()  // offset_for_non_ref_pic
		r.se()  // offset_for_top_to_bottom_field
		n := r.ue()
		for i := uint64(0); i < n && !r.overrun(); i++ {
			r.se() // offset_for_ref_frame
		}
	}
}

// ue reads an unsigned Exp-Golomb code (H.264 9.1); a code longer than
// 32 bits, which no valid SPS has, reads as 0 and marks an overrun.
func (r *bitReader) ue() uint64 {
	zeros := 0
	for r.bit() == 0 {
		if zeros++; zeros > 32 || r.overrun() {
			r.pos = len(r.b)*8 + 1
			return 0
		}
	}
	return 1<<zeros - 1 + r.bits(zeros)
}

// se reads a signed Exp-Golomb code (9.1.1).
func (r *bitReader) se() int64 {
	k := r.ue()
	if k%2 == 1 {
		return int64(k+1) / 2
	}
	return -int64(k / 2)
}
