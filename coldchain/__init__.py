"""Cold chain: logger files to readings, readings to excursions. Framework-free: this
package imports nothing from `coi`, Flask or SQLModel (a test enforces it). The readers and
the evaluation arrive with the cold-chain issue."""

from coldchain.readers import read

__all__ = ["read"]
