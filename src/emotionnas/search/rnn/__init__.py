"""Recurrent-cell search in the NAS-Bench-NLP recipe space (EmotionNAS Sec. 2.2)."""
