// mac_array_drv.v -- the register slice through which the in-process driver (mac_array_harness.cpp) feeds
// rtl/mac/mac_array.v: the array itself is unchanged and sees an ordinary valid/ready input stream.
//
// A beat presented on d_* is loaded into the slice on a rising edge when d_ready (= the slice is empty or
// the array takes the beat it holds at that same edge); the slice drives mac_array's inputs from registers.
// Everything the array computes therefore depends on registers only and is evaluated once per clock edge
// by the Verilated model, instead of on every change of the top-level inputs. Outputs pass straight through.

module mac_array_drv #(
    parameter ROWS        = 4,
    parameter COLS        = 4,
    parameter OPERAND_SM  = 1,
    parameter WEIGHT_PORT = 0,
    parameter P_BITS      = 16,
    parameter ACC_BITS    = 32,
    parameter ACC_SAT     = 0,
    parameter M_BITS      = 16,
    parameter S_BITS      = 6
) (
    input  wire                        clk,
    input  wire                        rst,
    input  wire                        d_valid,
    output wire                        d_ready,
    input  wire                        d_first,
    input  wire                        d_last,
    input  wire                        d_dw,
    input  wire [ROWS*9-1:0]           d_w,
    input  wire [COLS*9-1:0]           d_x,
    input  wire [ROWS*COLS*9-1:0]      d_xpe,
    input  wire [ROWS*ACC_BITS-1:0]    d_bias,
    input  wire [ROWS*M_BITS-1:0]      d_m,
    input  wire [ROWS*M_BITS-1:0]      d_mneg,
    input  wire [ROWS*S_BITS-1:0]      d_shift,
    input  wire [ROWS*9-1:0]           d_qlo,
    input  wire [ROWS*9-1:0]           d_qhi,
    output wire                        out_valid,
    input  wire                        out_ready,
    output wire [15:0]                 out_row,
    output wire                        out_last,
    output wire [COLS*ACC_BITS-1:0]    out_acc,
    output wire [COLS-1:0]             out_ovf,
    output wire [COLS*9-1:0]           out_q
);
    reg                     r_valid, r_first, r_last, r_dw;
    reg [ROWS*9-1:0]        r_w, r_qlo, r_qhi;
    reg [COLS*9-1:0]        r_x;
    reg [ROWS*COLS*9-1:0]   r_xpe;
    reg [ROWS*ACC_BITS-1:0] r_bias;
    reg [ROWS*M_BITS-1:0]   r_m, r_mneg;
    reg [ROWS*S_BITS-1:0]   r_shift;
    wire                    in_ready;

    assign d_ready = !r_valid || in_ready;

    always @(posedge clk) begin
        if (rst) begin
            r_valid <= 1'b0;
        end else if (d_ready) begin
            r_valid <= d_valid;
            r_first <= d_first; r_last <= d_last; r_dw <= d_dw;
            r_w <= d_w; r_x <= d_x; r_xpe <= d_xpe; r_bias <= d_bias;
            r_m <= d_m; r_mneg <= d_mneg; r_shift <= d_shift; r_qlo <= d_qlo; r_qhi <= d_qhi;
        end
    end

    mac_array #(
        .ROWS(ROWS), .COLS(COLS), .OPERAND_SM(OPERAND_SM), .WEIGHT_PORT(WEIGHT_PORT), .P_BITS(P_BITS),
        .ACC_BITS(ACC_BITS), .ACC_SAT(ACC_SAT), .M_BITS(M_BITS), .S_BITS(S_BITS)
    ) u_array (
        .clk(clk), .rst(rst), .in_valid(r_valid), .in_ready(in_ready), .in_first(r_first), .in_last(r_last),
        .in_dw(r_dw), .in_w(r_w), .in_x(r_x), .in_xpe(r_xpe), .in_bias(r_bias), .in_m(r_m), .in_mneg(r_mneg),
        .in_shift(r_shift), .in_qlo(r_qlo), .in_qhi(r_qhi),
        .out_valid(out_valid), .out_ready(out_ready), .out_row(out_row), .out_last(out_last), .out_acc(out_acc),
        .out_ovf(out_ovf), .out_q(out_q)
    );
endmodule
