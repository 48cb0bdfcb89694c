// mult_drum.v -- DRUM-k dynamic-range unbiased multiplier, unsigned 8x8 -> 16.
//
// Reference: S. Hashemi, R. I. Bahar, S. Reda, "DRUM: A dynamic range unbiased
// multiplier for approximate applications", ICCAD 2015.
//
// Per operand x with leading-one position t: if x < 2^K it is used unchanged;
// otherwise the K-bit segment starting at the leading one is taken
// (x >> (t-K+1)) and its LSB forced to 1 (unbiasing), shift = t-K+1.
// P = (seg_a * seg_b) << (shift_a + shift_b).  K = 2..8 (K = 8 is exact).
// Needs lod8.v.

module mult_drum #(
    parameter K = 4
) (
    input  [7:0]  a,
    input  [7:0]  b,
    output [15:0] p
);
    localparam integer KM1I = K - 1;
    localparam [3:0]   KM1  = KM1I[3:0];

    // shift amount from the leading-one position t: t-K+1 when t >= K, else 0
    function [2:0] shamt;
        input [2:0] t3;
        reg [3:0] t, d;
        begin
            t = {1'b0, t3};
            d = t - KM1;
            shamt = (t > KM1) ? d[2:0] : 3'd0;
        end
    endfunction

    wire [2:0] la, lb;
    lod8 u_lod_a (.x(a), .k(la));
    lod8 u_lod_b (.x(b), .k(lb));

    wire [2:0] sa = shamt(la);
    wire [2:0] sb = shamt(lb);

    wire [7:0] ta = a >> sa;
    wire [7:0] tb = b >> sb;
    wire [K-1:0] seg_a = ta[K-1:0] | {{(K-1){1'b0}}, (sa != 3'd0)};
    wire [K-1:0] seg_b = tb[K-1:0] | {{(K-1){1'b0}}, (sb != 3'd0)};

    wire [2*K-1:0] core = seg_a * seg_b;                 // K x K exact multiplier
    wire [3:0]     sh   = {1'b0, sa} + {1'b0, sb};
    wire [15:0]    core16;

    generate
        if (K < 8) begin : g_pad
            assign core16 = {{(16 - 2*K){1'b0}}, core};
        end else begin : g_full
            assign core16 = core;
        end
    endgenerate

    assign p = core16 << sh;
endmodule
