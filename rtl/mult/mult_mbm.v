// mult_mbm.v -- MBM, minimally biased logarithmic multiplier, unsigned 8x8 -> 16.
//
// Reference: H. Saadat, H. Bokhari, S. Parameswaran, "Minimally biased
// multipliers for approximate integer and floating-point multiplication",
// IEEE TCAD 37(11), 2018.
//
// Mitchell's multiplier (LOD, 7-bit fractions fa, fb, S = fa + fb) plus an
// error-correction term added to the mantissa: C = 1/12 truncated to 7
// fraction bits (10/128) without a carry, C/2 (5/128) with a carry.
//   S < 128 : P = floor((128 + S + 10) * 2^(ka+kb) / 128)
//   S >= 128: f = S - 128; m = 128 + f + 5, or 128 + f when f + 5 >= 128
//             (the correction would overflow the mantissa: omitted);
//             P = floor(m * 2^(ka+kb+1) / 128)
// A zero operand gives 0.  The result always fits 16 bits.

module mult_mbm (
    input  [7:0]  a,
    input  [7:0]  b,
    output [15:0] p
);
    function [2:0] lod;
        input [7:0] x;
        integer i;
        begin
            lod = 3'd0;
            for (i = 0; i < 8; i = i + 1)
                if (x[i]) lod = i[2:0];
        end
    endfunction

    localparam [8:0] C_NC = 9'd10;   // 1/12 = 0.0001010101..b -> 7 bits: 0.0001010
    localparam [8:0] C_C  = 9'd5;    // C/2

    wire [2:0] ka = lod(a);
    wire [2:0] kb = lod(b);
    wire [7:0] na = a << (3'd7 - ka);
    wire [7:0] nb = b << (3'd7 - kb);

    wire [7:0] s    = {1'b0, na[6:0]} + {1'b0, nb[6:0]};
    wire       cy   = s[7];
    wire [8:0] base = {2'b01, s[6:0]};                   // 128 + fraction
    wire       ovf  = cy & (s[6:0] >= 7'd123);           // f + 5 >= 128
    wire [8:0] m    = base + (cy ? (ovf ? 9'd0 : C_C) : C_NC);
    wire [3:0] e    = {1'b0, ka} + {1'b0, kb} + {3'b0, cy};

    wire [22:0] sh = {14'b0, m} << e;   // m < 2^9; m * 2^e < 2^23 in both cases
    wire        nz = (|a) & (|b);

    assign p = nz ? sh[22:7] : 16'd0;
endmodule
