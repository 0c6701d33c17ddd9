"""Drawings of the synthesized workflows (Mermaid in Markdown, under docs/diagrams/)."""
