"""Probes of what attention does on real language: pronoun antecedents and word senses."""
