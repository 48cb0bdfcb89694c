// mitchell_core.v -- Mitchell log/antilog datapath with an optional mantissa correction, unsigned
// 8x8 -> 16 (shared by mult_mitchell and mult_mbm). Needs lod8.v.
//
// For a, b != 0: log step: ka, kb = leading-one positions (lod8); fa, fb = the 7 bits below the
// leading one (normalising shifter), i.e. x = 2^k (1 + f/128); S = fa + fb (8 bits, S[7] = carry).
// Mantissa m (in 1/128 units) with the correction C_NC (no carry) or C_C (carry):
//   S < 128 : m = 128 + S + C_NC,          e = ka + kb
//   S >= 128: f = S - 128; m = 128 + f + C_C, or 128 + f when f + C_C >= 128
//             (a correction that would overflow the mantissa is omitted), e = ka + kb + 1
// Antilog step: P = floor(m * 2^e / 128) (shifter, truncating). A zero operand gives P = 0.
// C_NC = C_C = 0 is Mitchell's multiplier (mult_mitchell), C_NC = 10, C_C = 5 is MBM (mult_mbm); those
// two are proven exhaustively by their benches. Parameters 0..127 (the result then always fits 16 bits).

module mitchell_core #(
    parameter C_NC = 0,
    parameter C_C  = 0
) (
    input  [7:0]  a,
    input  [7:0]  b,
    output [15:0] p
);
    localparam [8:0]   CNC    = C_NC;
    localparam [8:0]   CC     = C_C;
    localparam integer OVF_AT = 128 - C_C;   // smallest f with f + C_C >= 128

    wire [2:0] ka, kb;
    lod8 u_lod_a (.x(a), .k(ka));
    lod8 u_lod_b (.x(b), .k(kb));

    // normalise: leading one moved to bit 7; bits 6..0 are the fraction
    wire [7:0] na = a << (3'd7 - ka);
    wire [7:0] nb = b << (3'd7 - kb);

    wire [7:0] s    = {1'b0, na[6:0]} + {1'b0, nb[6:0]};   // s[7] = carry (S >= 128)
    wire       cy   = s[7];
    wire [8:0] base = {2'b01, s[6:0]};                     // 128 + fraction
    wire       ovf  = cy & ({1'b0, s[6:0]} >= OVF_AT[7:0]);  // never for C_C = 0
    wire [8:0] m    = base + (cy ? (ovf ? 9'd0 : CC) : CNC);
    wire [3:0] e    = {1'b0, ka} + {1'b0, kb} + {3'b0, cy};

    // antilog: m * 2^e / 2^7, truncated; m < 2^9 so m * 2^e < 2^23
    wire [22:0] sh = {14'b0, m} << e;
    wire        nz = (|a) & (|b);

    assign p = nz ? sh[22:7] : 16'd0;
endmodule
