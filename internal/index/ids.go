package index

// idCol holds one value id per event at the narrowest width that fits the
// largest id so far (most property columns have a few hundred distinct
// values at most), widening as the dictionary grows.
type idCol struct {
	b []uint8
	h []uint16
	w []uint32
	n int
	// width is 1, 2 or 4 bytes.
	width uint8
}

// newIDCol returns a column of n zero ids (events that lack the path).
func newIDCol(n int) idCol {
	return idCol{b: make([]uint8, n, max(n+1, 16)), n: n, width: 1}
}

func (c *idCol) len() int { return c.n }

func (c *idCol) at(i int) uint32 {
	switch c.width {
	case 1:
		return uint32(c.b[i])
	case 2:
		return uint32(c.h[i])
	}
	return c.w[i]
}

func (c *idCol) add(id uint32) {
	switch {
	case c.width == 1 && id > 0xff:
		c.h = make([]uint16, c.n, max(c.n+1, 16)+c.n/4)
		for i, v := range c.b {
			c.h[i] = uint16(v)
		}
		c.b, c.width = nil, 2
	case c.width == 2 && id > 0xffff:
		c.w = make([]uint32, c.n, max(c.n+1, 16)+c.n/4)
		for i, v := range c.h {
			c.w[i] = uint32(v)
		}
		c.h, c.width = nil, 4
	}
	switch c.width {
	case 1:
		c.b = append(c.b, uint8(id))
	case 2:
		c.h = append(c.h, uint16(id))
	default:
		c.w = append(c.w, id)
	}
	c.n++
}

// decode writes the ids of events [from, to) into dst (len ≥ to-from) and
// returns dst[:to-from].
func (c *idCol) decode(dst []uint32, from, to int) []uint32 {
	dst = dst[:to-from]
	switch c.width {
	case 1:
		for i, v := range c.b[from:to] {
			dst[i] = uint32(v)
		}
	case 2:
		for i, v := range c.h[from:to] {
			dst[i] = uint32(v)
		}
	default:
		copy(dst, c.w[from:to])
	}
	return dst
}
