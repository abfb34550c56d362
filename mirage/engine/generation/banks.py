"""The built-in pt-BR phrase banks the offline generator mixes with each persona's own (greetings, openers, tails).

Persona banks come first (they carry the voice); these widen the space so a pair can talk for a month without
an exact repeat. Every greeting names its daypart, so a greeting never says "bom dia" in the evening.
"""

from __future__ import annotations

from mirage.config.types import Daypart
from mirage.engine.generation.model import Step

GREETINGS: dict[Daypart, tuple[str, ...]] = {
    "morning": ("Bom dia!", "Bom dia, tudo certo?", "Opa, bom dia!", "Bom diaaa!", "E aí, bom dia!"),
    "afternoon": ("Boa tarde!", "Opa, boa tarde!", "E aí, boa tarde!", "Boa tarde, tudo certo?", "Boa tardeee!"),
    "evening": ("Boa noite!", "Opa, boa noite!", "E aí, boa noite!", "Boa noite, tudo certo?", "Boa noiteee!"),
}
# The words that say which daypart a greeting belongs to (normalised: no accents, lower case).
DAYPART_WORDS: dict[Daypart, tuple[str, ...]] = {
    "morning": ("bom dia",),
    "afternoon": ("boa tarde",),
    "evening": ("boa noite",),
}

GREETING_FOLLOWUPS: tuple[str, ...] = (
    "Tudo certo por aí?",
    "Tudo bem com você?",
    "Como cê tá?",
    "Como vão as coisas?",
    "Tudo em paz?",
    "Tudo joia?",
    "Firme e forte?",
    "Saudade de prosear!",
    "Passando pra dar um oi",
    "Só passando pra saber de você",
    "Como tá a família?",
    "Beleza por aí?",
    "Tudo tranquilo?",
    "Como anda a vida?",
    "Que bom te ver por aqui",
    "Quanto tempo!",
    "Tudo na paz?",
    "E as novidades?",
    "Tá sumido, hein",
    "Lembrei de você agora",
)
DAYPART_FOLLOWUPS: dict[Daypart, tuple[str, ...]] = {
    "morning": (
        "Dormiu bem?",
        "Já tomou café?",
        "Bora que hoje o dia rende",
        "Cedinho e eu já na labuta",
        "O café já tá passado aqui",
        "Acordou com o pé direito?",
        "Que o dia seja bom pra você",
        "Dia bonito hoje, hein",
    ),
    "afternoon": (
        "Já almoçou?",
        "Como tá a tarde aí?",
        "E o cafezinho da tarde?",
        "A tarde tá corrida aí também?",
        "Depois do almoço bate aquela preguiça",
        "Tarde quente hoje, hein",
        "Metade do dia já foi",
        "Como foi a manhã?",
    ),
    "evening": (
        "Como foi o dia?",
        "Já jantou?",
        "Dia puxado hoje?",
        "Descansando?",
        "Enfim em casa?",
        "Hora de esticar as pernas",
        "O dia rendeu?",
        "Noite tranquila aí?",
    ),
}

OPENERS: dict[Step, tuple[str, ...]] = {
    "comment": ("Rapaz,", "Olha,", "Pois é,", "Ó,", "Então,", "Cara,", "Vou te falar,", "Sabe que", "Ih,", "Ô loco,"),
    "question": ("E aí,", "Me conta,", "Falando nisso,", "Ô,", "Diz aí,", "Me fala uma coisa:", "Escuta,", "Ah,"),
    "answer": ("Ah,", "Olha,", "Rapaz,", "Opa,", "Então,", "Ih,", "Pois é,", "Ó,", "Ixi,", "Eita,"),
    "goodbye": ("Bom,", "Bem,", "Então tá,", "Beleza,", "Opa,", "Tá bom,"),
    "greeting": (),
}
TAILS: dict[Step, tuple[str, ...]] = {
    "comment": (", viu", ", né", ", hein", ", vou te falar", ", pode isso?", ", é mole?", ", acredita?"),
    "question": (),
    "answer": (", viu", ", né", ", graças a Deus", ", fazer o quê", ", tamo aí", ", pode crer", " por aqui"),
    "goodbye": (),
    "greeting": (),
}

COMMENTS: tuple[str, ...] = (
    "Hoje o dia foi corrido",
    "Aqui tá tudo na paz",
    "O tempo virou de novo",
    "Acabei de passar um café",
    "A semana tá voando",
    "Fui na feira hoje cedo",
    "O trânsito tava parado hoje",
    "Dei uma arrumada no quintal",
    "Tô precisando de umas férias",
    "Aqui choveu um pouquinho",
)
QUESTIONS: tuple[str, ...] = (
    "E você, o que anda aprontando?",
    "Como tá o trabalho?",
    "E a família, tudo bem?",
    "Vai fazer alguma coisa no fim de semana?",
    "Tá tudo certo por aí?",
    "E a saúde, como vai?",
    "Já viu as novidades?",
    "Tá conseguindo descansar?",
    "Como foi a semana?",
    "E o pessoal aí, tudo bem?",
)
ANSWERS: tuple[str, ...] = (
    "Tudo certo por aqui",
    "Na correria, mas bem",
    "Tudo na paz, graças a Deus",
    "Melhor agora",
    "Vou levando",
    "Tudo tranquilo",
    "Tá puxado, mas tamo aí",
    "Bem demais",
    "Firme e forte",
    "Não posso reclamar",
)
GOODBYES: tuple[str, ...] = (
    "Abraço!",
    "Fica com Deus!",
    "Até mais!",
    "Falou, até a próxima!",
    "Vou nessa, abraço!",
    "Um abraço pra família!",
    "Até logo!",
    "Se cuida!",
    "Valeu pela prosa!",
    "Depois a gente se fala!",
)
GOODBYE_LEADS: tuple[str, ...] = (
    "Vou indo.",
    "Deixa eu voltar pro batente.",
    "Bora que o dia não para.",
    "Preciso ir agora.",
    "Já vou indo.",
    "Vou ali resolver umas coisas.",
)
DAYPART_GOODBYES: dict[Daypart, tuple[str, ...]] = {
    "morning": ("Bom trabalho aí!", "Bom dia pra você!", "Boa manhã!"),
    "afternoon": ("Boa tarde pra você!", "Bom resto de tarde!", "Boa tarde de trabalho!"),
    "evening": ("Bom descanso!", "Dorme bem!", "Boa noite pra você!"),
}

# {s}: the topic seed in lower case; {em} / {de}: "no X" / "do X" with the article contracted; {S}: capitalised.
SEEDED: dict[Step, tuple[str, ...]] = {
    "comment": (
        "Tô pensando {em} desde cedo",
        "Hoje só se fala {de} aqui",
        "{S}... esse assunto rende",
        "Aqui em casa o assunto é {s}",
        "Me lembrei {de} agora",
        "Vi uma coisa sobre {s} e lembrei de você",
        "Ontem mesmo falei {de} com o pessoal",
        "Não paro de pensar {em}",
        "Tô animado com {s}",
        "{S}, quem diria",
    ),
    "question": (
        "E {s}, como é que tá?",
        "O que você acha {de}?",
        "Já tá sabendo {de}?",
        "Alguma novidade sobre {s}?",
        "Você lembrou {de}?",
        "Qual a boa sobre {s}?",
        "Conta aí, e {s}?",
        "Pensou {em}?",
    ),
    "answer": (
        "Nem me fala {de}",
        "{S}? Tô acompanhando sim",
        "Pois é, {s} tá dando o que falar",
        "Tava justamente pensando {em}",
        "Sobre {s}, tô contigo",
        "{S} é assunto sério aqui",
    ),
    "greeting": (),
    "goodbye": (),
}

EMOJIS: dict[Step, tuple[str, ...]] = {
    "greeting": ("😊", "👋", "🙏", "😄", "🤗"),
    "comment": ("😅", "😂", "🤣", "😄", "👀", "🙌", "😎"),
    "question": ("🤔", "😄", "👀", "😊"),
    "answer": ("👍", "😄", "🙏", "😂", "🙌", "😅"),
    "goodbye": ("🙏", "🤗", "👋", "😘", "✌️", "❤️"),
}
DAYPART_EMOJIS: dict[Daypart, tuple[str, ...]] = {
    "morning": ("☀️", "☕", "🌞"),
    "afternoon": ("☕", "🌤️", "😎"),
    "evening": ("🌙", "✨", "😴"),
}
LAUGHS: tuple[str, ...] = ("kkkk", "kkkkk", "kkk", "kkkkkk")
