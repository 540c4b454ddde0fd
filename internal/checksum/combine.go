package checksum

import (
	"encoding/binary"
	"fmt"
)

// reflected polynomials of the CRC algorithms, for Combine.
var crcPoly = map[Algorithm]struct {
	poly  uint64
	width int
}{
	CRC32:     {0xedb88320, 32},
	CRC32C:    {0x82f63b78, 32},
	CRC64NVME: {0x9a6c9329ac4bc9b5, 64},
}

// IsCRC reports whether the algorithm is a CRC, whose checksums of parts can
// be combined into the checksum of the whole (S3's FULL_OBJECT type).
func (a Algorithm) IsCRC() bool { _, ok := crcPoly[a]; return ok }

// Combine returns the CRC of A·B from the CRC of A, the CRC of B and B's
// length, without the data: the method of zlib's crc32_combine, generalised
// to any reflected CRC with all-ones initial value and final xor.
func Combine(a Algorithm, crcA, crcB []byte, lenB int64) ([]byte, error) {
	p, ok := crcPoly[a]
	if !ok {
		return nil, fmt.Errorf("%w: %s checksums cannot be combined", ErrInvalidAlgorithm, a)
	}
	if len(crcA) != p.width/8 || len(crcB) != p.width/8 {
		return nil, fmt.Errorf("%w: %s checksum length", ErrInvalidChecksum, a)
	}
	get := func(b []byte) uint64 {
		if p.width == 32 {
			return uint64(binary.BigEndian.Uint32(b))
		}
		return binary.BigEndian.Uint64(b)
	}
	c := combine(get(crcA), get(crcB), lenB, p.poly, p.width)
	if p.width == 32 {
		return binary.BigEndian.AppendUint32(nil, uint32(c)), nil
	}
	return binary.BigEndian.AppendUint64(nil, c), nil
}

func gf2Times(mat []uint64, vec uint64) uint64 {
	var sum uint64
	for i := 0; vec != 0; i, vec = i+1, vec>>1 {
		if vec&1 != 0 {
			sum ^= mat[i]
		}
	}
	return sum
}

func gf2Square(square, mat []uint64) {
	for n := range mat {
		square[n] = gf2Times(mat, mat[n])
	}
}

func combine(crc1, crc2 uint64, len2 int64, poly uint64, width int) uint64 {
	if len2 <= 0 {
		return crc1
	}
	odd, even := make([]uint64, width), make([]uint64, width)
	odd[0] = poly // the operator for one zero bit
	row := uint64(1)
	for n := 1; n < width; n++ {
		odd[n] = row
		row <<= 1
	}
	gf2Square(even, odd) // two zero bits
	gf2Square(odd, even) // four zero bits
	for {
		gf2Square(even, odd) // apply len2 zero bytes to crc1
		if len2&1 != 0 {
			crc1 = gf2Times(even, crc1)
		}
		len2 >>= 1
		if len2 == 0 {
			break
		}
		gf2Square(odd, even)
		if len2&1 != 0 {
			crc1 = gf2Times(odd, crc1)
		}
		len2 >>= 1
		if len2 == 0 {
			break
		}
	}
	return crc1 ^ crc2
}
