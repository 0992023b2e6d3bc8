"""PromQL parser: Lark grammar -> frozen AST, type checks, printer. Never imports numpy."""
