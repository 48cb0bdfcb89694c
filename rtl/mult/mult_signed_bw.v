// mult_signed_bw.v -- exact signed (two's-complement) 8x8 -> 16 multiplier.
//
// Algorithm: modified Baugh-Wooley (Baugh & Wooley, IEEE Trans. Computers
// C-22(12), 1973; Hatamian's modified form).  Partial-product bits
//   a_i b_j            for i<7, j<7 and for i=j=7,
//   ~(a_i b_7), ~(a_7 b_j)  for i<7 / j<7 (the sign row and column, complemented),
// plus the constants 2^8 and 2^15; the sum modulo 2^16 is the signed product.
// The partial-product rows are formed bit by bit and summed with '+'.

module mult_signed_bw (
    input  [7:0]  a,
    input  [7:0]  b,
    output [15:0] p
);
    // row j (weight 2^j): rows[j] = (pp bits of b_j) << j
    wire [15:0] rows [0:7];

    genvar i, j;
    generate
        for (j = 0; j < 8; j = j + 1) begin : g_row
            wire [7:0] r;
            for (i = 0; i < 8; i = i + 1) begin : g_bit
                if ((i == 7) != (j == 7)) begin : g_inv
                    assign r[i] = ~(a[i] & b[j]);
                end else begin : g_pos
                    assign r[i] = a[i] & b[j];
                end
            end
            assign rows[j] = {8'b0, r} << j;
        end
    endgenerate

    localparam [15:0] BW_CONST = 16'h8100;   // 2^15 + 2^8

    assign p = rows[0] + rows[1] + rows[2] + rows[3] + rows[4] + rows[5] + rows[6] + rows[7]
             + BW_CONST;
endmodule
