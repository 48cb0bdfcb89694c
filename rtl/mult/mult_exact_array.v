// mult_exact_array.v -- exact unsigned 8x8 -> 16 array multiplier, structural.
//
// Algorithm: textbook ripple-carry array multiplier (e.g. Parhami, "Computer
// Arithmetic", ch. 11).  pp[j][i] = a[i] & b[j].  Row 0 is the first running
// sum; each row j = 1..7 adds pp[j] to the running sum shifted right by one
// with an 8-bit ripple-carry adder (half adder in the LSB, full adders above).
// The LSB of every row is a product bit; the last row gives p[15:8].
//
// The rows live in arrays of wires indexed by row (acc[j], cy[j]); the carries
// of a row feed later bits of the same word, which Verilator reports as
// UNOPTFLAT -- expected and harmless.
// Needs pa_adders.v.

module mult_exact_array (
    input  [7:0]  a,
    input  [7:0]  b,
    output [15:0] p
);
    wire [7:0] pp  [0:7];   // pp[j][i] = a[i] & b[j]
    wire [8:0] acc [0:7];   // result of row j (bit 8 = carry out of the row)
    wire [7:0] cy  [1:7];   // ripple carries in row j (cy[j][i] = carry out of bit i)

    genvar i, j;
    generate
        for (j = 0; j < 8; j = j + 1) begin : g_pp
            assign pp[j] = a & {8{b[j]}};
        end

        // row 0: the first partial product, nothing to add yet
        assign acc[0] = {1'b0, pp[0]};

        for (j = 1; j < 8; j = j + 1) begin : g_row
            // operand x = previous running sum shifted right by one (acc[j-1][8:1])
            pa_half_adder u_ha (
                .x (acc[j-1][1]),
                .y (pp[j][0]),
                .s (acc[j][0]),
                .co(cy[j][0])
            );
            for (i = 1; i < 8; i = i + 1) begin : g_fa
                pa_full_adder u_fa (
                    .x (acc[j-1][i+1]),
                    .y (pp[j][i]),
                    .ci(cy[j][i-1]),
                    .s (acc[j][i]),
                    .co(cy[j][i])
                );
            end
            assign acc[j][8] = cy[j][7];
        end

        // low product bits: the LSB of every row; high bits: the last row
        for (j = 0; j < 8; j = j + 1) begin : g_plo
            assign p[j] = acc[j][0];
        end
    endgenerate

    assign p[15:8] = acc[7][8:1];
endmodule
