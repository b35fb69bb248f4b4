"""Knowledge base: article import, bilingual search, evaluation (import submodules directly; jieba is heavy)."""
