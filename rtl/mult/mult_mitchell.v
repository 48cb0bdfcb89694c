// mult_mitchell.v -- Mitchell logarithmic multiplier, unsigned 8x8 -> 16.
//
// Reference: J. N. Mitchell, "Computer multiplication and division using
// binary logarithms", IRE Trans. Electronic Computers EC-11(4), 1962.
//
// For a, b != 0: k = leading-one position (LOD), x = (a - 2^k) / 2^k as a
// 7-bit fraction (normalising barrel shifter), s = xa + xb (adder).
//   s < 1 : P = floor(2^(ka+kb)   * (1 + s))
//   s >= 1: P = floor(2^(ka+kb+1) * s)        (characteristic + 1)
// Either way the mantissa is {1, s[6:0]} and the characteristic is
// ka + kb + carry; the antilog shifter truncates, giving the floor.
// A zero operand gives 0.

module mult_mitchell (
    input  [7:0]  a,
    input  [7:0]  b,
    output [15:0] p
);
    // leading-one detector: position of the most significant 1 (0 for x = 0)
    function [2:0] lod;
        input [7:0] x;
        integer i;
        begin
            lod = 3'd0;
            for (i = 0; i < 8; i = i + 1)
                if (x[i]) lod = i[2:0];
        end
    endfunction

    wire [2:0] ka = lod(a);
    wire [2:0] kb = lod(b);

    // normalise: leading one moved to bit 7; bits 6..0 are the fraction
    wire [7:0] na = a << (3'd7 - ka);
    wire [7:0] nb = b << (3'd7 - kb);

    wire [7:0] s  = {1'b0, na[6:0]} + {1'b0, nb[6:0]};   // s[7] = carry (s >= 1)
    wire [7:0] m  = {1'b1, s[6:0]};                      // mantissa, 1.7 fixed point
    wire [3:0] e  = {1'b0, ka} + {1'b0, kb} + {3'b0, s[7]};

    // antilog: m * 2^e / 2^7, truncated
    wire [22:0] sh = {15'b0, m} << e;
    wire        nz = (|a) & (|b);

    assign p = nz ? sh[22:7] : 16'd0;
endmodule
