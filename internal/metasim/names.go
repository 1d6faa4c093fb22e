package metasim

var firstNames = []string{
	"Maya", "Liam", "Olivia", "Noah", "Emma", "Ava", "Elijah", "Sophia", "Lucas", "Mia",
	"Amelia", "Mateo", "Harper", "Levi", "Evelyn", "Ezra", "Abigail", "Asher", "Ella", "Leo",
	"Aria", "Jack", "Scarlett", "Owen", "Luna", "Kai", "Chloe", "Ethan", "Zoe", "Theo",
	"Nora", "Caleb", "Lily", "Isaac", "Hazel", "Julian", "Ivy", "Miles", "Aurora", "Ezekiel",
	"Stella", "Nina", "Omar", "Priya", "Ravi", "Sana", "Yuki", "Hana", "Kenji", "Mei",
	"Diego", "Lucia", "Carmen", "Javier", "Ines", "Tomas", "Elena", "Marco", "Giulia", "Luca",
	"Amara", "Kofi", "Zainab", "Tariq", "Leila", "Yusuf", "Aisha", "Malik", "Fatima", "Idris",
	"Freya", "Soren", "Astrid", "Nils", "Ingrid", "Henrik", "Sofie", "Emil", "Clara", "Felix",
	"Rosa", "Hugo", "Alma", "Oscar", "Iris", "Jonah", "Willa", "Silas", "June", "Rowan",
	"Ada", "Milo", "Vera", "Arlo", "Nadia", "Eli", "Tessa", "Jude", "Lena", "Reid",
}

var lastNames = []string{
	"Rivers", "Stone", "Hart", "Brooks", "Vale", "Moreno", "Chen", "Patel", "Nakamura", "Okafor",
	"Silva", "Novak", "Larsen", "Fischer", "Rossi", "Dubois", "Kowalski", "Haddad", "Mensah", "Ibrahim",
	"Walker", "Bennett", "Hayes", "Porter", "Fleming", "Gray", "Sullivan", "Reyes", "Castillo", "Ortiz",
	"Kim", "Park", "Tanaka", "Sato", "Wong", "Singh", "Khan", "Ali", "Nguyen", "Tran",
	"Murphy", "Kelly", "Walsh", "Byrne", "Quinn", "Doyle", "Fox", "Wolfe", "Marsh", "Lowe",
	"Ferreira", "Costa", "Santos", "Lopez", "Garcia", "Romero", "Navarro", "Vargas", "Mendes", "Duarte",
	"Berg", "Lund", "Holm", "Dahl", "Strand", "Moller", "Weber", "Becker", "Wagner", "Koch",
	"Adeyemi", "Osei", "Boateng", "Diallo", "Mwangi", "Kamau", "Abara", "Eze", "Nwosu", "Ndiaye",
	"Carter", "Ellis", "Foster", "Greer", "Holt", "Irwin", "Jensen", "Keane", "Lyons", "Mercer",
	"Nash", "Pryor", "Rhodes", "Shaw", "Tate", "Upton", "Voss", "Ware", "Yates", "Zane",
}

var brandFirst = []string{
	"Luma", "North", "Velvet", "Copper", "Juniper", "Harbor", "Sunny", "Wild", "Golden", "Blue",
	"Maple", "Urban", "Silver", "Crimson", "Little", "Brave", "Honey", "Misty", "Solar", "Coral",
	"Cedar", "Lucky", "Bright", "Quiet", "Rustic", "Polar", "Amber", "Ivory", "Jade", "Noble",
}

var brandSecond = []string{
	"Brew", "Peak", "Fox", "Kettle", "Threads", "Bakery", "Botanics", "Roasters", "Studio", "Outfitters",
	"Skincare", "Bikes", "Candles", "Pantry", "Goods", "Apparel", "Kitchen", "Cycles", "Optics", "Gardens",
	"Labs", "Supply", "Market", "Atelier", "Tea", "Shoes", "Beauty", "Fitness", "Travel", "Books",
}

var commentPhrases = []string{
	"Love this!", "So good 😍", "Need this in my life", "Where can I buy it?", "Obsessed 🔥",
	"This is amazing", "Can't wait to try it", "Beautiful shot", "Absolutely stunning", "Yes please!",
	"Best one yet", "Ordered mine already", "Wow 👏👏", "Looks delicious", "Take my money",
	"Adding to my wishlist", "Great colors", "This made my day", "Big fan of your work", "Is this vegan?",
	"Do you ship to Canada?", "My favorite brand", "Perfect for summer", "Such a vibe ✨", "Gorgeous",
	"Count me in", "How much is it?", "Tagging my sister", "Finally!", "🙌🙌🙌",
}

var captionPhrases = []string{
	"Morning ritual", "Weekend mood", "Golden hour", "New favorite", "Self care Sunday",
	"Road trip essentials", "Cozy evening", "Little things", "Fresh start", "City walks",
	"Coffee first", "Sunday reset", "Out and about", "Treat yourself", "Good vibes only",
}

var postMessages = []string{
	"Our new collection is here! Tell us your favorite in the comments.",
	"Giveaway time: comment and react to enter.",
	"Thank you for 10k followers! Share your story with us.",
	"Behind the scenes at our studio this week.",
	"Back in stock by popular demand.",
	"Which color should we make next? Vote with a reaction.",
}

var reactionTypes = []string{"LIKE", "LIKE", "LIKE", "LIKE", "LOVE", "LOVE", "WOW", "HAHA", "SAD", "ANGRY", "CARE"}
