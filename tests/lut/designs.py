"""Small Verilog designs written by the tests (user-style RTL with odd port names, layouts and quirks)."""

from pathlib import Path

NON_ANSI = """
module my_mul (x_in, y_in, prod_o);
  input [7:0] x_in;
  input [7:0] y_in;
  output [15:0] prod_o;
  wire [15:0] full;
  helper_mul u (.p(x_in), .q(y_in), .r(full));
  assign prod_o = full >> SHIFT;
  parameter SHIFT = 0;
endmodule
"""

HELPER = """
module helper_mul (input [7:0] p, input [7:0] q, output [15:0] r);
  assign r = p * q;
endmodule
"""

AMBIGUOUS = """
module amb (input [7:0] a, input [7:0] b, input [7:0] c, output [15:0] p);
  assign p = a * b + c;
endmodule
"""

SEQUENTIAL = """
module seq (input clk, input [7:0] a, input [7:0] b, output reg [15:0] p);
  always @(posedge clk) p <= a * b;
endmodule
"""

XOUT = """
module xout (input [7:0] a, input [7:0] b, output [15:0] p);
  assign p = (a == 8'd3 && b == 8'd5) ? 16'bx : a * b;
endmodule
"""

DISAGREE = """
module disagree (input [7:0] a, input [7:0] b, output [15:0] p);
`ifdef VERILATOR
  assign p = (a == 8'd7 && b == 8'd9) ? 16'd1 : a * b;
`else
  assign p = a * b;
`endif
endmodule
"""

SIGNED = """
module smul (input signed [7:0] a, input signed [7:0] b, output signed [15:0] p);
  assign p = a * b;
endmodule
"""

NARROW = """
module narrow (input [7:0] a, input [6:0] b, output [15:0] p);
  assign p = a * b;
endmodule
"""

SYNTAX = """
module broken (input [7:0] a, input [7:0] b, output [15:0] p)
  assign p = a * b;
endmodule
"""

COMB_LOOP = """
module loopy (input [7:0] a, input [7:0] b, output [15:0] p);
  wire [15:0] rows [0:8];
  assign rows[0] = 16'd0;
  genvar i;
  generate for (i = 0; i < 8; i = i + 1) begin : g
    assign rows[i + 1] = rows[i] + (b[i] ? ({8'd0, a} << i) : 16'd0);
  end endgenerate
  assign p = rows[8];
endmodule
"""


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path
